"""The named choices of the model settings, shared by the run configuration and the models.

Free of TensorFlow, so that reading or checking a configuration does not load it.
"""

MODEL_KINDS = ("rqreg", "ziln", "mse", "logmse", "twostage", "gr", "d2q", "gbdt")
LABEL_TRANSFORMS = ("log1p", "identity")
DECODINGS = ("tree", "pruned", "beam", "greedy", "expectation")  # how RQ-Reg serves its code distribution
RNC_REPRESENTATIONS = ("codes", "features")  # what RQ-Reg's Rank-N-Contrast term orders
PRECISIONS = ("float32", "mixed_float16")  # the Trainer's Keras dtype policy; the export is float32 either way
GBDT_LOSSES = ("poisson", "squared_error")  # what the gbdt kind's trees minimise (models/gbdt.py)
# How the shared feature encoder reads a numeric feature: its z-score, or also its piecewise-linear
# encoding on quantile bins fitted in Transform (models/piecewise_linear.py).
NUMERIC_ENCODINGS = ("zscore", "piecewise_linear")
MEAN_CALIBRATIONS = ("none", "scale", "deciles")  # the served mean's map fitted on the valid split (mean_calibration.py)
FEATURE_ENCODERS = ("mlp", "cross", "token_mixing")  # RQ-Reg's feature encoder (models/layers.py)
LEARNING_RATE_SCHEDULES = ("constant", "warmup_cosine")  # RQ-Reg's learning rate over training (models/lr_schedule.py)
