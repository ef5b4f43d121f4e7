"""The container images, linted without Docker: base tags follow requirements.lock, sources exist."""

import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIPELINE = os.path.join(ROOT, "docker", "Dockerfile")
SERVING = os.path.join(ROOT, "docker", "serving.Dockerfile")
GPU = os.path.join(ROOT, "docker", "gpu.Dockerfile")


def instructions(path):
    """(KEYWORD, argument text) per instruction: comments dropped, continuation lines joined."""
    result, pending = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if pending and line.lstrip().startswith("#"):
                continue  # a comment inside a continued instruction
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            text = (pending + line).strip()
            pending = ""
            keyword, _, rest = text.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path}: the last instruction ends with a line continuation"
    return result


def header(path):
    """The comment block at the top of a Dockerfile."""
    lines = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line)
    return "".join(lines)


def pins():
    """name -> version from requirements.lock."""
    found = {}
    with open(os.path.join(ROOT, "requirements.lock")) as f:
        for line in f:
            match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?==([^\s;]+)", line)
            if match:
                found[match.group(1).lower()] = match.group(3)
    return found


def only(keyword, path):
    found = [rest for kw, rest in instructions(path) if kw == keyword]
    assert len(found) == 1, f"{path}: expected one {keyword}, found {found}"
    return found[0]


def copy_sources(rest):
    """The sources of a COPY (all words but the last, flags dropped); None for COPY --from=stage."""
    words = shlex.split(rest)
    if any(w.startswith("--from") for w in words):
        return None
    words = [w for w in words if not w.startswith("--")]
    return words[:-1]


def env(path):
    """ENV key=value pairs of a Dockerfile."""
    values = {}
    for keyword, rest in instructions(path):
        if keyword == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                values[key] = value
    return values


@pytest.mark.parametrize("path", [PIPELINE, SERVING, GPU])
def test_build_and_run_commands_are_documented_on_top(path):
    top = header(path)
    assert f"docker build -f docker/{os.path.basename(path)}" in top
    assert "docker run" in top


@pytest.mark.parametrize("path", [PIPELINE, SERVING, GPU])
def test_instructions_parse(path):
    known = {"FROM", "ARG", "ENV", "WORKDIR", "COPY", "RUN", "LABEL", "EXPOSE", "ENTRYPOINT", "CMD", "USER"}
    parsed = instructions(path)
    assert parsed and parsed[0][0] in ("FROM", "ARG")
    assert {keyword for keyword, _ in parsed} <= known


def test_pipeline_image_is_the_locked_tfx_release():
    assert only("FROM", PIPELINE) == f"tensorflow/tfx:{pins()['tfx']}"


def test_pipeline_image_installs_the_lock_then_the_project():
    runs = [rest for keyword, rest in instructions(PIPELINE) if keyword == "RUN"]
    lock = [i for i, r in enumerate(runs) if re.search(r"pip install\b.*-r requirements\.lock", r)]
    project = [i for i, r in enumerate(runs) if re.search(r"pip install\b.*--no-deps \.(\s|$)", r)]
    assert lock and project and lock[0] < project[0]
    copied = {src for keyword, rest in instructions(PIPELINE) if keyword == "COPY"
              for src in copy_sources(rest) or ()}
    # What `pip install .` needs: the build description and every package pyproject.toml includes.
    assert {"pyproject.toml", "README.md", "requirements.lock"} <= copied
    assert {"pipeline/", "components/", "models/", "schemas/"} <= copied


def test_pipeline_image_sets_the_environment_every_process_needs():
    values = env(PIPELINE)
    assert values["TF_USE_LEGACY_KERAS"] == "1"
    assert values["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] == "1"
    # Dataflow starts the Beam SDK harness, the entrypoint of the base image: never override it.
    assert not [kw for kw, _ in instructions(PIPELINE) if kw in ("ENTRYPOINT", "CMD")]


def test_serving_image_matches_the_locked_tensorflow():
    image, _, tag = only("FROM", SERVING).partition(":")
    assert image == "tensorflow/serving"
    tensorflow = pins()["tensorflow"]
    assert tag.split(".")[:2] == tensorflow.split(".")[:2], f"TF Serving {tag} vs tensorflow {tensorflow}"
    assert tag == pins()["tensorflow-serving-api"]


def test_serving_image_serves_the_pushed_model_as_rqvalue():
    assert env(SERVING)["MODEL_NAME"] == "rqvalue"
    sources = copy_sources(only("COPY", SERVING))
    assert sources == ["${MODEL_DIR}/"]
    assert shlex.split(only("COPY", SERVING))[-1].rstrip("/") == "/models/rqvalue"
    assert only("ARG", SERVING).startswith("MODEL_DIR=")


@pytest.mark.parametrize("path", [PIPELINE, SERVING, GPU])
def test_every_copy_source_exists(path):
    for keyword, rest in instructions(path):
        if keyword != "COPY":
            continue
        for source in copy_sources(rest) or ():
            if "${MODEL_DIR}" in source:
                continue  # the serving image's build context is a pushed serving/ folder (see its header)
            assert os.path.exists(os.path.join(ROOT, source)), f"{path}: COPY source {source!r} is missing"


def test_pipeline_image_copies_every_package_the_project_installs():
    """Every top-level package of pyproject's package list is copied before `pip install .`."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    listed = re.search(r"\[tool\.setuptools\.packages\.find\]\s*include\s*=\s*\[([^]]*)\]", text).group(1)
    packages = {name.strip().strip('"').rstrip("*") for name in listed.split(",") if name.strip()}
    copied = {shlex.split(rest)[0].rstrip("/") for kw, rest in instructions(PIPELINE) if kw == "COPY"}
    assert packages and packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


# -- the GPU image -----------------------------------------------------------------------------------------

def _project_version():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def test_gpu_image_extends_the_pipeline_image_built_by_make():
    default = only("ARG", GPU)
    assert default == f"PIPELINE_IMAGE=rqvalue-pipeline:{_project_version()}"
    assert only("FROM", GPU) == "${PIPELINE_IMAGE}"
    assert [kw for kw, _ in instructions(GPU)][:2] == ["ARG", "FROM"]
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    target = re.search(r"^image-gpu:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    pipeline_build, gpu_build = [line.strip() for line in target.splitlines()]
    assert pipeline_build.startswith("docker build -f docker/Dockerfile -t rqvalue-pipeline:$(VERSION)")
    assert gpu_build.startswith("docker build -f docker/gpu.Dockerfile "
                                "--build-arg PIPELINE_IMAGE=rqvalue-pipeline:$(VERSION)")
    assert re.search(r"^VERSION := .*pyproject.toml", makefile, re.M)
    # The Beam SDK harness stays the entrypoint, as in the pipeline image.
    assert not [kw for kw, _ in instructions(GPU) if kw in ("ENTRYPOINT", "CMD")]


def test_gpu_image_installs_the_cuda_wheels_of_the_locked_tensorflow_and_nothing_else():
    (run,) = [rest for keyword, rest in instructions(GPU) if keyword == "RUN"]
    install = re.search(r"pip install (.*?) &&", run).group(1).split()
    assert "-c" in install and install[install.index("-c") + 1] == "requirements.lock"  # the lock holds the rest
    tensorflow = pins()["tensorflow"]
    assert f'"tensorflow[and-cuda]=={tensorflow}"' in install


def test_gpu_image_checks_the_cuda_build_of_the_locked_tensorflow():
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    (run,) = [rest for keyword, rest in instructions(GPU) if keyword == "RUN"]
    expected = re.search(r"== \('([0-9.]+)', '([0-9]+)'\)", run).groups()
    assert expected == (build["cuda_version"], build["cudnn_version"])
    assert f"libcudnn.so.{build['cudnn_version']}" in run
    assert f"libcudart.so.{build['cuda_version'].split('.')[0]}" in run


def test_gpu_image_puts_the_linked_cuda_libraries_first_on_the_library_path():
    (run,) = [rest for keyword, rest in instructions(GPU) if keyword == "RUN"]
    folder = re.search(r"mkdir -p (\S+)", run).group(1)
    assert f"os.path.join('{folder}'" in run
    path = env(GPU)["LD_LIBRARY_PATH"]
    assert path.split("$")[0] == folder
    keywords = [kw for kw, _ in instructions(GPU)]
    assert keywords.index("ENV") < keywords.index("RUN")  # the library checks in RUN see the path
