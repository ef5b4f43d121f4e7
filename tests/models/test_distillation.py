"""Distillation: the alignment and code-KL terms on hand-written numbers, a frozen teacher, a student that learns
from it and exports nothing of it."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from toy_data import RQREG_PLAIN, zero_inflated

from models import base, codebook, distillation, rqreg
from schemas import features

SIZES = (4, 3)
PLAIN = dict(embedding_dim=4, hidden_units=(8,), lstm_units=8, **RQREG_PLAIN)
PRIVILEGED = "p"


def test_cosine_alignment_on_hand_written_vectors():
    student = tf.constant([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    teacher = tf.constant([[5.0, 0.0], [0.0, -1.0], [0.0, 4.0], [1.0, 1.0]])
    # 1 - cos per row: same direction 0, opposite 2, orthogonal 1, a zero vector 1.
    assert distillation.cosine_alignment_loss(student, teacher).numpy() == pytest.approx((0 + 2 + 1 + 1) / 4)
    assert distillation.cosine_alignment_loss(teacher[:1], teacher[:1]).numpy() == pytest.approx(0.0, abs=1e-7)


def test_cosine_alignment_moves_only_the_student():
    student, teacher = tf.Variable([[1.0, 1.0]]), tf.Variable([[1.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = distillation.cosine_alignment_loss(student, teacher)
    grad_student, grad_teacher = tape.gradient(loss, [student, teacher])
    assert grad_teacher is None
    # Gradient descent turns the student towards the teacher: its second component shrinks.
    assert grad_student.numpy()[0, 1] > 0 > grad_student.numpy()[0, 0]


def test_code_kl_on_hand_written_distributions():
    teacher = [tf.constant([[0.0, 0.0]]), tf.constant([[1.0, 2.0, 3.0]])]
    student = [tf.constant([[np.log(3.0), 0.0]]), tf.constant([[1.0, 2.0, 3.0]])]
    # Level 1: KL((.5, .5) || (.75, .25)) = .5 ln(.5/.75) + .5 ln(.5/.25); level 2 equal: 0; mean over levels.
    level_1 = 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)
    assert distillation.code_kl_loss(teacher, student).numpy() == pytest.approx(level_1 / 2, rel=1e-5)
    # At temperature 2 each softmax flattens: logits halved, then τ² = 4 times the KL.
    q = np.array([np.sqrt(3.0), 1.0]) / (np.sqrt(3.0) + 1.0)
    at_2 = 4 * (0.5 * np.log(0.5 / q[0]) + 0.5 * np.log(0.5 / q[1])) / 2
    assert distillation.code_kl_loss(teacher, student, temperature=2.0).numpy() == pytest.approx(at_2, rel=1e-5)
    with pytest.raises(ValueError, match="levels"):
        distillation.code_kl_loss(teacher, student[:1])


def _data(n=512, seed=0):
    """The toy set plus a privileged feature that carries most of the target (what a window after t would)."""
    inputs, _, labels = zero_inflated(n, seed)
    t = np.log1p(labels.astype(np.float64))
    book = codebook.fit(t, SIZES)
    noise = np.random.default_rng(seed + 1).normal(scale=0.1, size=n)
    inputs = {**inputs, features.transformed_name(PRIVILEGED): (t + noise).astype(np.float32),
              features.CODES_KEY: codebook.encode(t, book)}
    return inputs, t.astype(np.float32), book, labels


def _context(book, numeric):
    return base.TrainContext(numeric_keys=numeric, vocab_sizes={"c": 4}, label_transform="log1p",
                             train_labels=np.array([0.0, 500.0]), codebook_levels=tuple(book))


def _compiled(model):
    loss, weights = model.loss_config()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, loss_weights=weights)
    return model


def _fit(model, inputs, target, steps, seed=0):
    keras.utils.set_random_seed(seed)
    data = tf.data.Dataset.from_tensor_slices((inputs, target)).repeat().batch(64)
    data = data.map(lambda x, y: (x, model.training_targets(x, y)))
    return model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0).history


class _TransformOutput:
    """What export_signatures reads of a TFTransformOutput, for inputs that are already transformed."""

    def __init__(self, inputs):
        self._inputs = inputs

    def transformed_feature_spec(self):
        return {k: tf.io.FixedLenFeature(v.shape[1:], tf.as_dtype(v.dtype)) for k, v in self._inputs.items()}

    def raw_feature_spec(self):
        return {k[:-len("_xf")]: tf.io.FixedLenFeature([], tf.as_dtype(v.dtype)) for k, v in self._inputs.items()
                if k.endswith("_xf")}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    inputs, target, book, _ = _data()
    keras.utils.set_random_seed(0)
    teacher = _compiled(distillation.TeacherRQReg(_context(book, ("x", PRIVILEGED)), **PLAIN))
    _fit(teacher, inputs, target, steps=150)
    # The raw examples of this toy set hold the transformed values under the raw names.
    teacher.tft_layer = lambda raw: {features.transformed_name(k): v for k, v in raw.items()}
    path = str(tmp_path_factory.mktemp("teacher"))
    tf.saved_model.save(teacher, path, signatures=teacher.export_signatures(_TransformOutput(inputs)))
    return path


def test_teacher_exports_its_representation_and_code_logits(teacher_dir):
    inputs, _, _, _ = _data(16, seed=3)
    frozen = distillation.FrozenTeacher(teacher_dir)
    assert set(frozen.input_keys) == {"x_xf", "c_xf", "p_xf", features.CODES_KEY}
    targets = frozen({k: tf.constant(v) for k, v in inputs.items()})
    assert targets[distillation.REPRESENTATION_KEY].shape == (16, PLAIN["hidden_units"][-1])
    for level, size in enumerate(SIZES, start=1):
        assert targets[rqreg.level_key(level)].shape == (16, size)
    with pytest.raises(ValueError, match="privileged"):
        frozen({k: tf.constant(v) for k, v in inputs.items() if k != "p_xf"})


def test_student_aligns_to_the_frozen_teacher_and_exports_nothing_of_it(teacher_dir, tmp_path):
    inputs, target, book, _ = _data()
    frozen = distillation.FrozenTeacher(teacher_dir)
    before = frozen({k: tf.constant(v[:32]) for k, v in inputs.items()})[distillation.REPRESENTATION_KEY].numpy()

    def student(weight):
        keras.utils.set_random_seed(0)
        return _compiled(distillation.StudentRQReg(
            _context(book, ("x",)), teacher=frozen, alignment_weight=weight, code_kl_weight=0.5, kl_temperature=1.0,
            **PLAIN))

    aligned, free = student(5.0), student(0.0)
    history = _fit(aligned, inputs, target, steps=120)
    _fit(free, inputs, target, steps=120)
    assert np.isfinite(history["alignment"]).all() and np.isfinite(history["code_kl"]).all()
    # The alignment term pulls the student's encoding towards the teacher's, more than training without it.
    align = {name: distillation.cosine_alignment_loss(
        model.encoder(inputs), frozen(inputs)[distillation.REPRESENTATION_KEY]).numpy()
        for name, model in (("aligned", aligned), ("free", free))}
    assert align["aligned"] < align["free"] - 0.05, align
    # The teacher is frozen: training the student left it as it was.
    after = frozen({k: tf.constant(v[:32]) for k, v in inputs.items()})[distillation.REPRESENTATION_KEY].numpy()
    np.testing.assert_array_equal(before, after)
    # The student reads no privileged input and carries none of the teacher's variables.
    serving_inputs = {k: v for k, v in inputs.items() if k != "p_xf"}
    np.testing.assert_allclose(aligned.leaf_probabilities(serving_inputs), aligned.leaf_probabilities(inputs))
    plain = rqreg.RQRegModel(_context(book, ("x",)), **PLAIN)
    plain(inputs)
    assert len(aligned.trainable_variables) == len(plain.trainable_variables)
    path = str(tmp_path / "student")
    tf.saved_model.save(aligned, path)
    assert distillation.TEACHER_TARGETS_SIGNATURE not in tf.saved_model.load(path).signatures
    teacher_size = sum(int(np.prod(v.shape)) for v in tf.saved_model.load(teacher_dir).variables)
    student_size = sum(int(np.prod(v.shape)) for v in tf.saved_model.load(path).variables)
    plain_size = sum(int(np.prod(v.shape)) for v in plain.variables)
    assert student_size < plain_size + teacher_size // 2


def test_student_needs_the_teachers_width(teacher_dir):
    _, _, book, _ = _data(16)
    with pytest.raises(ValueError, match="hidden_units"):
        distillation.StudentRQReg(_context(book, ("x",)), teacher=distillation.FrozenTeacher(teacher_dir),
                                  alignment_weight=1.0, code_kl_weight=0.0, kl_temperature=1.0,
                                  **{**PLAIN, "hidden_units": (5,)})


def test_student_takes_every_rqreg_setting_of_its_config(teacher_dir):
    _, _, book, _ = _data(16)
    config = {**PLAIN, "feature_encoder": "cross", "cross_layers": 1, "learning_rate_schedule": "warmup_cosine",
              "alignment_weight": 1.0, "code_kl_weight": 0.0, "kl_temperature": 1.0}
    student = distillation.StudentRQReg.from_config_and_context_and_teacher(
        config, _context(book, ("x",)), distillation.FrozenTeacher(teacher_dir))
    assert len(student.encoder.cross) == 1 and student.learning_rate_schedule == "warmup_cosine"


def test_a_piecewise_linear_teacher_exports_and_reads_its_encodings(tmp_path):
    inputs, target, book, _ = _data(256)

    def encodings(values):  # a stand-in for Transform's <key>_ple: 4 columns per numeric feature
        return {features.piecewise_linear_name(k): tf.tile(tf.reshape(tf.cast(values[features.transformed_name(k)],
                                                                               tf.float32), [-1, 1]), [1, 4])
                for k in ("x", PRIVILEGED)}

    inputs = {**inputs, **{k: v.numpy() for k, v in encodings(inputs).items()}}
    context = base.TrainContext(numeric_keys=("x", PRIVILEGED), vocab_sizes={"c": 4}, label_transform="log1p",
                                train_labels=np.array([0.0, 500.0]), codebook_levels=tuple(book),
                                numeric_encoding="piecewise_linear")
    teacher = _compiled(distillation.TeacherRQReg(context, **PLAIN))
    _fit(teacher, inputs, target, steps=2)

    def tft_layer(raw):
        transformed = {features.transformed_name(k): v for k, v in raw.items()}
        return {**transformed, **encodings(transformed)}

    teacher.tft_layer = tft_layer
    path = str(tmp_path / "teacher")
    tf.saved_model.save(teacher, path, signatures=teacher.export_signatures(_TransformOutput(inputs)))
    frozen = distillation.FrozenTeacher(path)
    assert {"x_ple", "p_ple"} <= set(frozen.input_keys)
    got = frozen({k: tf.constant(v[:8]) for k, v in inputs.items()})[distillation.REPRESENTATION_KEY]
    np.testing.assert_allclose(got.numpy(), teacher.encoder({k: v[:8] for k, v in inputs.items()}).numpy(), rtol=1e-5)
