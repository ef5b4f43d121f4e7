"""`rqvalue bench`: every model kind on the embedded data sets, several seeds (rows -> data -> scoring ->
train -> results)."""
