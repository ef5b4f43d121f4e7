"""Privileged-feature distillation: a teacher that reads the window after the prediction time, and the served student.

A feature store knows what happened after each training example's prediction time t (the spend
of the next 30 days, say); a served model never may. Two RQ-Reg models with the same decoder
share that knowledge without leaking it:

  - the **teacher** (`TeacherRQReg`, `teacher_run_fn`) is RQ-Reg trained on the serving features
    plus the privileged ones, which only the train and valid splits carry
    (`components/privileged_retrieval.py`). Besides the usual signatures it exports
    `teacher_targets` — from transformed features, its encoded features ("representation") and
    the logits of every code level under teacher forcing — and `representation`, the same
    encoding from raw tf.Examples;
  - the **student** (`StudentRQReg`, `student_run_fn`) is the served model: RQ-Reg on the serving
    features alone, trained with its usual loss plus
        alignment_weight × mean(1 − cos(h_student, h_teacher))
    (`cosine_alignment_loss`), the teacher's representation of the *same* example, computed
    inside the training step by the frozen teacher from that example's privileged features, and
    optionally
        code_kl_weight × mean over levels of τ² · KL(softmax(z_teacher/τ) ‖ softmax(z_student/τ))
    (`code_kl_loss`) on the code distributions of every level.
The teacher is frozen: trained first to convergence, then only read (its SavedModel is loaded
outside the student's variables, so nothing of it is trained, tracked or exported with the
student). The student's encoder reads only the serving features, its serving signature parses only
those, and its early stopping watches its own task loss on the valid split.

The idea follows OCARM ("Break the Inaccessible Boundary: Distilling Post-Conversion Content for
User Retention Modeling", arXiv 2604.25839): a teacher sees post-conversion content, is frozen,
and the student's user encoding is aligned to the teacher's by a cosine term (the paper reports
that training both jointly, without freezing the teacher, collapsed); and "Privileged Features
Distillation at Taobao" (arXiv 1907.05171), which distils the teacher's outputs — here the code
distributions of RQ-Reg's decoder.
"""

from typing import Any, Dict, Mapping, Sequence

import tensorflow as tf
import tf_keras as keras

from models import base, rqreg, trainer
from schemas import features

REPRESENTATION_KEY = "representation"
TEACHER_TARGETS_SIGNATURE = "teacher_targets"
REPRESENTATION_SIGNATURE = "representation"
# Trainer custom_config keys of the student (besides RQ-Reg's own).
STUDENT_CONFIG_KEYS = ("alignment_weight", "code_kl_weight", "kl_temperature")


def cosine_alignment_loss(student: tf.Tensor, teacher: tf.Tensor, epsilon: float = 1e-8) -> tf.Tensor:
    """mean over the batch of 1 − cos(student_i, teacher_i); no gradient flows into the teacher.

    Args:
      student, teacher: [B, D] representations of the same examples.
      epsilon: guards the norms of all-zero vectors (their cosine counts as 0).

    Returns:
      A scalar in [0, 2]: 0 when every pair points the same way.
    """
    student = tf.cast(student, tf.float32)
    teacher = tf.stop_gradient(tf.cast(teacher, tf.float32))
    dot = tf.reduce_sum(student * teacher, axis=-1)
    norms = tf.norm(student, axis=-1) * tf.norm(teacher, axis=-1)
    return tf.reduce_mean(1.0 - dot / tf.maximum(norms, epsilon))


def code_kl_loss(teacher_logits: Sequence[tf.Tensor], student_logits: Sequence[tf.Tensor],
                 temperature: float = 1.0) -> tf.Tensor:
    """Mean over levels and examples of τ² · KL(p_teacher ‖ p_student), both softmaxes at temperature τ.

    Args:
      teacher_logits, student_logits: one [B, K_l] tensor per level, aligned.
      temperature: τ; the τ² factor keeps the gradient's scale independent of it (Hinton et al. 2015).

    Returns:
      A non-negative scalar; no gradient flows into the teacher.
    """
    if len(teacher_logits) != len(student_logits):
        raise ValueError(f"teacher_logits: {len(teacher_logits)} levels, student_logits: {len(student_logits)}")
    terms = []
    for teacher, student in zip(teacher_logits, student_logits):
        log_p = tf.nn.log_softmax(tf.stop_gradient(tf.cast(teacher, tf.float32)) / temperature)
        log_q = tf.nn.log_softmax(tf.cast(student, tf.float32) / temperature)
        terms.append(tf.reduce_mean(tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)))
    return temperature ** 2 * tf.add_n(terms) / len(terms)


def _level_keys(model: rqreg.RQRegModel):
    return [rqreg.level_key(level) for level in range(1, len(model.sizes) + 1)]


class TeacherRQReg(rqreg.RQRegModel):
    """RQ-Reg that reads serving and privileged features, and exports what the student learns from."""

    def _input_keys(self):
        """The transformed features the encoder reads (piecewise-linear encodings included) and the codes."""
        return ([features.transformed_name(k) for k in self.encoder.numeric_keys]
                + [features.piecewise_linear_name(k) for k in getattr(self.encoder, "piecewise", {})]
                + [features.transformed_name(k) for k in self.encoder.vocab_sizes] + [features.CODES_KEY])

    def teacher_targets(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """From transformed features (with the true codes): the encoded features [B, D] and each level's
        logits under teacher forcing [B, K_l]."""
        outputs = self(inputs, training=False)
        targets = {REPRESENTATION_KEY: self.encoder(inputs)}
        targets.update({key: outputs[key] for key in _level_keys(self)})
        return targets

    def export_signatures(self, tft_output) -> Dict[str, Any]:
        """`teacher_targets` (transformed features -> `teacher_targets`) and `representation` (serialized raw
        tf.Examples carrying serving and privileged features -> the encoded features)."""
        transformed = tft_output.transformed_feature_spec()
        keys = self._input_keys()
        missing = [k for k in keys if k not in transformed]
        if missing:
            raise ValueError(f"teacher inputs {missing} are not among Transform's outputs")
        specs = {k: tf.TensorSpec([None, *transformed[k].shape], transformed[k].dtype, name=k) for k in keys}
        raw_names = set(self.encoder.numeric_keys) | set(self.encoder.vocab_sizes)
        raw_spec = {k: v for k, v in tft_output.raw_feature_spec().items() if k in raw_names}

        @tf.function(input_signature=[specs])
        def teacher_targets(inputs):
            return self.teacher_targets(inputs)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def representation(serialized):
            raw = tf.io.parse_example(serialized, raw_spec)
            return {REPRESENTATION_KEY: self.encoder(self.tft_layer(raw))}

        return {TEACHER_TARGETS_SIGNATURE: teacher_targets, REPRESENTATION_SIGNATURE: representation}


class FrozenTeacher:
    """A trained teacher's `teacher_targets`, loaded from its SavedModel and only ever read.

    A plain object on purpose: kept on the student, it is not tracked by Keras, so none of the
    teacher's variables is trained, checkpointed or exported with the student.
    """

    def __init__(self, saved_model_dir: str):
        self._loaded = tf.saved_model.load(saved_model_dir)
        if TEACHER_TARGETS_SIGNATURE not in self._loaded.signatures:
            raise ValueError(f"{saved_model_dir}: not a teacher model (no {TEACHER_TARGETS_SIGNATURE!r} signature)")
        self._targets = self._loaded.signatures[TEACHER_TARGETS_SIGNATURE]
        self.input_keys = tuple(sorted(self._targets.structured_input_signature[1]))
        self.representation_size = int(self._targets.structured_outputs[REPRESENTATION_KEY].shape[-1])

    def __call__(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        missing = [k for k in self.input_keys if k not in inputs]
        if missing:
            raise ValueError(f"the teacher reads {missing}, which the training examples lack: the student's "
                             "training splits must carry the privileged features")
        return self._targets(**{k: inputs[k] for k in self.input_keys})


class StudentRQReg(rqreg.RQRegModel):
    """RQ-Reg on the serving features, trained with the distillation terms against a frozen teacher.

    Args:
      context, **rqreg_settings: as `rqreg.RQRegModel` (the serving features only).
      teacher: the frozen teacher.
      alignment_weight: λ of the cosine alignment of the encoded features.
      code_kl_weight: weight of the per-level code KL (0: off).
      kl_temperature: τ of the code KL.
    """

    def __init__(self, context: base.TrainContext, *, teacher: FrozenTeacher, alignment_weight: float,
                 code_kl_weight: float, kl_temperature: float, **rqreg_settings):
        super().__init__(context, **rqreg_settings)
        width = self.encoder.hidden_units[-1]
        if teacher.representation_size != width:
            raise ValueError(f"model.hidden_units: the student's encoding has {width} units, the teacher's "
                             f"{teacher.representation_size}; they must match")
        self._teacher = teacher
        self.alignment_weight = float(alignment_weight)
        self.code_kl_weight = float(code_kl_weight)
        self.kl_temperature = float(kl_temperature)
        self.alignment_tracker = keras.metrics.Mean(name="alignment")
        self.code_kl_tracker = keras.metrics.Mean(name="code_kl")

    @classmethod
    def from_config_and_context_and_teacher(cls, config: Mapping, context: base.TrainContext,
                                            teacher: FrozenTeacher) -> "StudentRQReg":
        return cls(context, teacher=teacher, **cls.settings(config),
                   **{name: config[name] for name in STUDENT_CONFIG_KEYS})

    def _distillation_terms(self, x, outputs) -> Dict[str, tf.Tensor]:
        """The alignment and code-KL terms of a batch, against the frozen teacher's targets of the same rows."""
        targets = self._teacher(x)
        terms = {"alignment": cosine_alignment_loss(self.encoder(x), targets[REPRESENTATION_KEY])}
        keys = _level_keys(self)
        terms["code_kl"] = code_kl_loss([targets[k] for k in keys], [outputs[k] for k in keys], self.kl_temperature)
        return terms

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            outputs = self(x, training=True)
            task = self.compute_loss(x, y, outputs)
            terms = self._distillation_terms(x, outputs)
            loss = task + self.alignment_weight * terms["alignment"]
            if self.code_kl_weight > 0:
                loss += self.code_kl_weight * terms["code_kl"]
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        self.alignment_tracker.update_state(terms["alignment"])
        self.code_kl_tracker.update_state(terms["code_kl"])
        return self.compute_metrics(x, y, outputs, None)

    def test_step(self, data):
        """The task loss alone (what early stopping watches), and the distillation terms as metrics."""
        x, y = data
        outputs = self(x, training=False)
        self.compute_loss(x, y, outputs)
        terms = self._distillation_terms(x, outputs)
        self.alignment_tracker.update_state(terms["alignment"])
        self.code_kl_tracker.update_state(terms["code_kl"])
        return self.compute_metrics(x, y, outputs, None)


def teacher_config(trainer_config: Mapping[str, Any], privileged_names: Sequence[str]) -> Dict[str, Any]:
    """The teacher Trainer's custom_config: the student's, with the privileged features among the numeric ones.

    The teacher never warm-starts: the blessed model a warm start would read is a student, which
    reads other features.
    """
    config = dict(trainer_config)
    config["numeric_features"] = list(trainer_config["numeric_features"]) + list(privileged_names)
    config["warm_start"] = False
    return config


def student_config(trainer_config: Mapping[str, Any], *, alignment_weight: float, code_kl_weight: float,
                   kl_temperature: float) -> Dict[str, Any]:
    """The student Trainer's custom_config: the usual one (serving features only) plus the distillation weights."""
    return {**trainer_config, "alignment_weight": alignment_weight, "code_kl_weight": code_kl_weight,
            "kl_temperature": kl_temperature, "warm_start": False}


def teacher_run_fn(fn_args) -> None:
    """TFX Trainer entry point of the teacher."""
    trainer.run_fn(fn_args, construct=TeacherRQReg.from_config_and_context)


def student_run_fn(fn_args) -> None:
    """TFX Trainer entry point of the student: `fn_args.base_model` is the teacher's SavedModel, read, never trained
    or warm-started from."""
    if not fn_args.base_model:
        raise ValueError("the student Trainer needs the teacher's model as its base_model")
    teacher = FrozenTeacher(fn_args.base_model)
    fn_args.base_model = None
    trainer.run_fn(fn_args, construct=lambda config, context:
                   StudentRQReg.from_config_and_context_and_teacher(config, context, teacher))
