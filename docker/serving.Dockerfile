# Serving image: TensorFlow Serving with the models that the pipeline's Pusher wrote.
# TF Serving 2.16 matches tensorflow 2.16 in requirements.lock (and tensorflow-serving-api 2.16.1).
#
# The build context is a pushed serving folder, <output_dir>/serving/ (one subfolder per version,
# the TF Serving layout); TF Serving serves the highest version.
#   docker build -f docker/serving.Dockerfile -t rqvalue-serving runs/serving
# or, from a folder that holds the serving folder elsewhere:
#   docker build -f docker/serving.Dockerfile --build-arg MODEL_DIR=serving -t rqvalue-serving runs
# Run (8500 gRPC, 8501 REST):
#   docker run --rm -p 8501:8501 rqvalue-serving
# Predict: the signature takes serialized tf.Examples without the label, base64 in JSON:
#   curl -d '{"instances": [{"b64": "<base64 of a serialized tf.Example>"}]}' \
#       http://localhost:8501/v1/models/rqvalue:predict
FROM tensorflow/serving:2.16.1

ARG MODEL_DIR=.
ENV MODEL_NAME=rqvalue
COPY ${MODEL_DIR}/ /models/rqvalue/
