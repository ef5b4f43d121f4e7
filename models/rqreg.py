"""The RQ-Reg model: a feature encoder, then an LSTM that predicts the target's RQ codes coarse to fine.

Training is teacher-forced: step l sees the embedding of the true code of level l-1 (a learned
start vector at step 1) and the encoded features, and emits logits over level l's codes. The
loss (`losses`) is the code cross-entropy of every level plus a Huber term on the decoded value
E[t] = Σ_l Σ_k p_l(k)·C_l[k], so the code probabilities are also trained to land near the target.

Decoding (`decoding`, the serving outputs):
  - "tree": enumerate the whole code tree (Π K_l leaves): the probability of every code path,
    chained through the LSTM, times that path's decoded value in label units gives the exact
    predictive mean; the same leaf distribution gives the median and the 80% interval. The LSTM
    input's projection is split into per-example and per-code parts, so branching on every code
    costs one recurrent product per path (`leaf_probabilities`).
  - "pruned": the tree, with the last level's codes branched only under the `beam_width` most
    probable code prefixes of each row (paths through every level but the last; the greedy
    prefix always among them); every other prefix keeps its whole probability on the leaf of its
    last-level code nearest 0 (`_last_level_pruned`). The probability of every prefix is exact, so
    are the greedy codes; the mean and quantiles differ from the tree's only by the last level's
    small residuals under the pruned prefixes, at a fraction of the tree's cost (the last level
    is most of it).
  - "beam": the same over a beam: every first-level code is kept (the first level carries most
    of the value, and its probability is spread over many codes), then under each of them only
    the `beam_width` most probable prefixes are extended at each further level but the last,
    which is expanded in full (the zero code's subtree counts as one path, since it decodes to 0
    whatever follows); leaf probabilities are renormalised. K_1 · beam_width · K_L leaves
    instead of Π K_l.
  - "greedy": `prediction` is the decoded value of the greedy code path (the most probable code
    at each level given the codes chosen above it); the distribution outputs come from the beam.
  - "expectation": `prediction` is t⁻¹ of the chained expectation Σ_l Σ_k p_l(k)·C_l[k] along the
    greedy path (the decoded value of training, with the model's own codes); distribution outputs
    from the beam.
`codes` is the greedy path in every mode.
"""

from typing import Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import base, codebook, label_transform, lr_schedule, rnc
from models.choices import DECODINGS, FEATURE_ENCODERS, LEARNING_RATE_SCHEDULES, RNC_REPRESENTATIONS
from models.layers import TokenMixingEncoder, output_head
from schemas import features


def level_key(level: int) -> str:
    """Name of the model output holding the logits of level `level` (counting from 1)."""
    return f"level_{level}"


VALUE_KEY = "value"
# The Trainer config keys RQRegModel is built from; their defaults are the run configuration's
# (`pipeline.config.ModelConfig`), the one place they are set.
CONFIG_KEYS = ("embedding_dim", "hidden_units", "lstm_units", "regression_weight", "rnc_weight", "rnc_temperature",
               "sampling_probability", "decoding", "beam_width", "code_smoothing", "rnc_representation")
# Settings with defaults here too, so a Trainer config written before they existed still builds.
OPTIONAL_CONFIG = {"feature_encoder": "mlp", "mixer_blocks": 2, "cross_layers": 2, "learning_rate_schedule": "constant",
                   "warmup_steps": 100, "learning_rate": 3e-3}


def smoothed_code_targets(target: tf.Tensor, codes: tf.Tensor, levels: Sequence[np.ndarray],
                          smoothing: float) -> List[tf.Tensor]:
    """Soft targets per level, [B, K_l] each: a histogram-loss view of the code cross-entropy.

    Centroids are sorted, so a level's codes are ordered bins of its residual: the bin edges are
    the midpoints between neighbouring centroids. A positive label's target at level l is a
    Gaussian centred on its residual r_l = t - Σ_{j<l} C_j[c_j] (true codes above it), integrated
    over those bins, with σ_l = `smoothing` × the mean spacing of level l's centroids; at level 1
    the bins are those of the non-zero codes, so P(zero) stays a hard hurdle target. Zero labels
    keep their one-hot codes at every level. A near miss to a neighbouring code then costs less
    than a miss across the range (as in the HL-Gauss loss of Imani & White, 2018). smoothing = 0
    gives the one-hot codes.
    """
    target = tf.reshape(tf.cast(target, tf.float32), [-1])
    codes = tf.cast(codes, tf.int64)
    zero = (codes[:, 0] == codebook.ZERO_CODE)[:, None]
    residual = target
    targets = []
    for level, centroids in enumerate(levels):
        centroids = np.asarray(centroids, np.float32)
        hard = tf.one_hot(codes[:, level], len(centroids))
        bins = centroids[1:] if level == 0 else centroids  # level 1: the non-zero codes
        if smoothing > 0 and len(bins) > 1:
            sigma = float(smoothing * np.mean(np.diff(bins)))
            edges = np.concatenate([[-np.inf], (bins[1:] + bins[:-1]) / 2, [np.inf]]).astype(np.float32)
            cdf = 0.5 * (1.0 + tf.math.erf((edges[None, :] - residual[:, None]) / (sigma * np.sqrt(2.0))))
            soft = cdf[:, 1:] - cdf[:, :-1]
            if level == 0:
                soft = tf.concat([tf.zeros_like(soft[:, :1]), soft], axis=1)
            soft = soft / tf.maximum(tf.reduce_sum(soft, axis=1, keepdims=True), 1e-12)
            targets.append(tf.where(zero, hard, soft))
        else:
            targets.append(hard)
        residual = residual - tf.gather(tf.constant(centroids), codes[:, level])
    return targets


class RQRegModel(base.ValueModel):
    """Feature encoder -> autoregressive LSTM over RQ codes (RQ-Reg, arXiv 2602.23012).

    Args:
      context: the training context; `context.codebook_levels` are the sorted centroids per level
        in transformed units (level 1 starts with the zero code).
      embedding_dim, hidden_units, lstm_units: layer sizes.
      regression_weight: weight of the Huber term on the decoded value.
      rnc_weight, rnc_temperature: Rank-N-Contrast (0 turns it off) on `rnc_representation`: "codes",
        the sum of the code embeddings along the true code path, or "features", the encoded features.
      sampling_probability: the final scheduled-sampling rate.
      code_smoothing: soft code targets (`smoothed_code_targets`); 0 trains on the one-hot codes.
      decoding, beam_width: how serving reads the code distribution (module docstring).

    Inputs: dict of transformed features; for training also `rq_codes` [B, L] (teacher forcing).
    Outputs of `call`: `level_l` logits [B, K_l] and `value` = E[t] [B].
    """

    def __init__(self, context: base.TrainContext, *, embedding_dim: int, hidden_units: Sequence[int],
                 lstm_units: int, regression_weight: float, rnc_weight: float, rnc_temperature: float,
                 sampling_probability: float, decoding: str, beam_width: int, code_smoothing: float,
                 rnc_representation: str, feature_encoder: str = "mlp", mixer_blocks: int = 2, cross_layers: int = 2,
                 learning_rate_schedule: str = "constant", warmup_steps: int = 100, learning_rate: float = 3e-3,
                 **kwargs):
        if feature_encoder not in FEATURE_ENCODERS:
            raise ValueError(f"model.feature_encoder: {feature_encoder!r} is not one of {FEATURE_ENCODERS}")
        super().__init__(context, embedding_dim, hidden_units,
                         cross_layers=cross_layers if feature_encoder == "cross" else 0, **kwargs)
        if feature_encoder == "token_mixing":
            if context.numeric_encoding != "zscore":
                raise ValueError(f"model.feature_encoder: token_mixing reads each numeric feature's z-score only; "
                                 f"model.numeric_encoding {context.numeric_encoding!r} would be computed and ignored")
            self.encoder = TokenMixingEncoder(context.numeric_keys, context.vocab_sizes, embedding_dim, hidden_units,
                                              blocks=mixer_blocks, name="encoder")
        if learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            raise ValueError(f"model.learning_rate_schedule: {learning_rate_schedule!r} is not one of "
                             f"{LEARNING_RATE_SCHEDULES}")
        self.learning_rate_schedule = learning_rate_schedule
        self.warmup_steps = int(warmup_steps)
        self.peak_learning_rate = float(learning_rate)
        if decoding not in DECODINGS:
            raise ValueError(f"model.decoding: {decoding!r} is not one of {DECODINGS}")
        self.decoding = decoding
        self.beam_width = int(beam_width)
        self.rnc_weight = rnc_weight
        self.rnc_temperature = rnc_temperature
        self.sampling_probability = sampling_probability
        if code_smoothing < 0:
            raise ValueError(f"model.code_smoothing: {code_smoothing} must be >= 0")
        self.code_smoothing = float(code_smoothing)
        if rnc_representation not in RNC_REPRESENTATIONS:
            raise ValueError(f"model.rnc_representation: {rnc_representation!r} is not one of {RNC_REPRESENTATIONS}")
        self.rnc_representation = rnc_representation
        # Probability of feeding the model's own previous code instead of the true one (scheduled sampling).
        self.sampling_rate = tf.Variable(0.0, trainable=False, name="sampling_rate")
        self.levels = [np.asarray(c, dtype=np.float32) for c in context.codebook_levels]
        self.sizes = [len(c) for c in self.levels]
        self.lstm_units = lstm_units
        self.regression_weight = regression_weight
        self.initial_state = keras.layers.Dense(2 * lstm_units, activation="tanh", name="initial_state")
        self.start = self.add_weight(name="start_embedding", shape=(1, embedding_dim), initializer="zeros")
        # The code of level l is the input of step l+1; the last level's embedding only enters the
        # code-path representation that Rank-N-Contrast orders.
        self.code_embeddings = [keras.layers.Embedding(k, embedding_dim, name=f"code_embed_{l}")
                                for l, k in enumerate(self.sizes, start=1)]
        self.cell = keras.layers.LSTMCell(lstm_units, name="decoder")
        self.heads = [output_head(k, f"head_{l}") for l, k in enumerate(self.sizes, start=1)]
        _, leaf_targets = codebook.leaf_values(self.levels)
        leaf_values = label_transform.inverse(tf.constant(leaf_targets, tf.float32), self.label_transform_name)
        order = np.argsort(leaf_values.numpy(), kind="stable")
        self._leaf_values = leaf_values
        self._leaf_order = tf.constant(order, tf.int32)
        self._sorted_leaf_values = tf.constant(leaf_values.numpy()[order])
        self._collapse_code = int(np.argmin(np.abs(self.levels[-1])))

    @staticmethod
    def settings(config: Mapping) -> Dict[str, object]:
        """The constructor's settings from a Trainer config: CONFIG_KEYS, and OPTIONAL_CONFIG where set."""
        return {**{name: config[name] for name in CONFIG_KEYS},
                **{name: config.get(name, default) for name, default in OPTIONAL_CONFIG.items()}}

    @classmethod
    def from_config_and_context(cls, config: Mapping, context: base.TrainContext) -> "RQRegModel":
        return cls(context, **cls.settings(config))

    def training_callbacks(self, total_steps: int):
        """Scheduled sampling (the sampling rate ramps linearly from 0 to sampling_probability) and, with
        learning_rate_schedule warmup_cosine, the learning rate's warm-up and cosine decay."""
        callbacks = []
        if self.sampling_probability > 0:
            callbacks.append(SamplingSchedule(self.sampling_rate, self.sampling_probability, total_steps))
        if self.learning_rate_schedule == "warmup_cosine":
            callbacks.append(lr_schedule.WarmupCosine(self.peak_learning_rate, self.warmup_steps, total_steps))
        return callbacks

    def loss_config(self):
        """Code cross-entropy per level + regression_weight * Huber on the decoded value E[t].

        During training `call` also adds rnc_weight * Rank-N-Contrast on the code-path embeddings.
        """
        code_loss = (keras.losses.CategoricalCrossentropy if self.code_smoothing > 0
                     else keras.losses.SparseCategoricalCrossentropy)
        loss = {level_key(l): code_loss(from_logits=True) for l in range(1, len(self.sizes) + 1)}
        loss[VALUE_KEY] = keras.losses.Huber(delta=1.0)
        weights = {level_key(l): 1.0 for l in range(1, len(self.sizes) + 1)}
        weights[VALUE_KEY] = self.regression_weight
        return loss, weights

    def training_targets(self, inputs: Mapping[str, tf.Tensor], target: tf.Tensor) -> Dict[str, tf.Tensor]:
        """Each level's true code (or its smoothed distribution, with code_smoothing), and the transformed label."""
        codes = inputs[features.CODES_KEY]
        if self.code_smoothing > 0:
            soft = smoothed_code_targets(target, codes, self.levels, self.code_smoothing)
            targets = {level_key(l): soft[l - 1] for l in range(1, len(self.sizes) + 1)}
        else:
            targets = {level_key(l): codes[:, l - 1] for l in range(1, len(self.sizes) + 1)}
        targets[VALUE_KEY] = tf.reshape(target, [-1])
        return targets

    def _start_state(self, context: tf.Tensor) -> List[tf.Tensor]:
        h, c = tf.split(self.initial_state(context), 2, axis=1)
        return [h, c]

    def _step(self, level: int, previous: tf.Tensor, context: tf.Tensor, state):
        output, state = self.cell(tf.concat([previous, context], axis=1), state)
        return self.heads[level](output), state

    def call(self, inputs: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        context = self.encoder(inputs)
        codes = tf.cast(inputs[features.CODES_KEY], tf.int64)
        batch = tf.shape(context)[0]
        previous = tf.tile(self.start, [batch, 1])
        state = self._start_state(context)
        outputs, expected = {}, []
        for level in range(len(self.sizes)):
            logits, state = self._step(level, previous, context, state)
            outputs[level_key(level + 1)] = logits
            expected.append(tf.linalg.matvec(tf.nn.softmax(logits), tf.constant(self.levels[level])))
            if level + 1 < len(self.sizes):
                previous = self._next_input(level, codes[:, level], logits, training)
        nonzero = 1.0 - tf.nn.softmax(outputs[level_key(1)])[:, codebook.ZERO_CODE]
        outputs[VALUE_KEY] = expected[0] + nonzero * tf.add_n(expected[1:]) if len(expected) > 1 else expected[0]
        if training and self.rnc_weight > 0:
            representation = context if self.rnc_representation == "features" else self._path_embedding(codes)
            self.add_loss(self.rnc_weight * rnc.rnc_loss(representation, self._decode(codes), self.rnc_temperature))
        return outputs

    def _next_input(self, level: int, true_code: tf.Tensor, logits: tf.Tensor, training) -> tf.Tensor:
        """Embedding of the code fed to the next step: the true one, or under scheduled sampling
        (training only, per example with probability `sampling_rate`) the model's own argmax."""
        embedded = self.code_embeddings[level](true_code)
        if not training or self.sampling_probability <= 0:
            return embedded
        predicted = self.code_embeddings[level](tf.argmax(tf.stop_gradient(logits), axis=1))
        use_predicted = tf.random.uniform([tf.shape(true_code)[0], 1]) < self.sampling_rate
        return tf.where(use_predicted, predicted, embedded)

    def _path_embedding(self, codes: tf.Tensor) -> tf.Tensor:
        """Sum of the code embeddings along each example's code path, [B, E]."""
        return tf.add_n([self.code_embeddings[l](codes[:, l]) for l in range(len(self.sizes))])

    def _decode(self, codes: tf.Tensor) -> tf.Tensor:
        """The quantized target of each code path (transformed units), [B]."""
        total = tf.add_n([tf.gather(tf.constant(c), codes[:, l]) for l, c in enumerate(self.levels)])
        return tf.where(codes[:, 0] == codebook.ZERO_CODE, tf.zeros_like(total), total)

    def leaf_probabilities(self, inputs: Mapping[str, tf.Tensor], prefixes: int = 0) -> tf.Tensor:
        """Probability of every code path, [B, Π K_l], in `codebook.leaf_values` order.

        The LSTM's input is [previous code embedding, context], so its pre-activation splits into a
        part per example (context and bias), a part per code (a [K, 4H] table) and the recurrent part
        per path. Branching a path on every code then costs one recurrent product per path, not one
        full LSTM step per (path, code): the same numbers as stepping `self.cell` on every branch,
        with a fraction of the work at the last level.

        Args:
          inputs: transformed features.
          prefixes: 0 (the exact tree) or, with two levels or more, how many code prefixes (paths
            through every level but the last) branch on the last level's codes in each row: the most
            probable ones that do not start with the zero code, plus the greedy prefix
            (`_greedy_codes`); `_last_level_pruned` says where the others' probability goes.
        """
        context = self.encoder(inputs)
        batch = tf.shape(context)[0]
        embed = self.start.shape[-1]
        if not self.cell.built:
            self.cell.build(tf.TensorShape([None, embed + context.shape[-1]]))
        kernel, recurrent = self.cell.kernel, self.cell.recurrent_kernel
        per_example = tf.matmul(context, kernel[embed:]) + self.cell.bias  # [B, 4H]
        per_code = tf.matmul(self.start, kernel[:embed])  # [K_prev, 4H]; the start vector at level 1
        h, c = (s[:, None, :] for s in self._start_state(context))  # [B, P, H], P = 1
        probs = tf.ones([batch, 1])
        last = len(self.sizes) - 1
        for level, size in enumerate(self.sizes):
            # Every path branches on every code of the previous level. The gates are split before
            # the broadcast, so no [B, P, K_prev, 4H] tensor is built: four of [B, P, K_prev, H].
            if level == last and 0 < prefixes < int(np.prod(self.sizes[:last])):
                return self._last_level_pruned(probs, per_example, per_code, (h, c), prefixes)
            per_path = per_example[:, None, :] + tf.einsum("bph,hg->bpg", h, recurrent)  # [B, P, 4H]
            gates = [a[:, :, None, :] + b[None, None, :, :]
                     for a, b in zip(tf.split(per_path, 4, axis=-1), tf.split(per_code, 4, axis=-1))]
            h, c = self._lstm_update(gates, c[:, :, None, :])
            paths = tf.shape(h)[1] * tf.shape(h)[2]
            h = tf.reshape(h, [batch, paths, self.lstm_units])
            c = tf.reshape(c, [batch, paths, self.lstm_units])
            p = tf.nn.softmax(self.heads[level](h))  # [B, paths, K_l]
            probs = tf.reshape(probs[:, :, None] * p, [batch, -1])
            if level + 1 < len(self.sizes):
                per_code = tf.matmul(self.code_embeddings[level](tf.range(size, dtype=tf.int64)), kernel[:embed])
        return probs

    def _last_level_pruned(self, probs: tf.Tensor, per_example: tf.Tensor, per_code: tf.Tensor, state,
                           prefixes: int) -> tf.Tensor:
        """The leaf probabilities [B, Π K_l] when only `prefixes` code prefixes per row branch on the
        last level's codes (`leaf_probabilities`).

        Args:
          probs: the probability of every prefix, [B, Q], Q = Π_{l<L} K_l.
          per_example: the rows' part of the LSTM pre-activations, [B, 4H]; per_code: the part of
            each code of level L-1, [K, 4H]; state: (h, c) of the prefixes' parents (their first L-2
            codes), [B, Q/K, H] each.

        A kept prefix's probability is spread over the last level's codes by the LSTM, exactly as in
        the full tree; every other prefix keeps its whole probability on one leaf, its path with the
        last-level code whose centroid is nearest 0 (the residual left after the levels above). So
        the probability of every prefix, hence of every code of the levels above, is exact, and the
        greedy codes are those of the full tree; a prefix starting with the zero code decodes to 0
        whatever its last code, so those are never expanded for their value.
        """
        batch = tf.shape(probs)[0]
        last = len(self.sizes) - 1
        greedy = self._greedy_codes(probs, self.sizes[:last])  # [B, L-1]
        total = int(np.prod(self.sizes[:last]))
        strides = np.cumprod([1] + self.sizes[1:last][::-1])[::-1]  # of each code in a prefix's index
        greedy_prefix = tf.reduce_sum(tf.cast(greedy, tf.int32) * tf.constant(strides, tf.int32)[None, :], axis=1)
        zero_prefix = tf.constant(np.arange(total) < total // self.sizes[0])
        score = tf.where(zero_prefix[None, :], -1.0, probs)
        score = tf.where(tf.one_hot(greedy_prefix, total) > 0, 2.0, score)  # the greedy prefix always
        _, kept = tf.math.top_k(score, k=prefixes)  # [B, M]
        parent, code = kept // self.sizes[last - 1], kept % self.sizes[last - 1]
        h, c = (tf.gather(s, parent, batch_dims=1) for s in state)  # [B, M, H]
        gates = (per_example[:, None, :] + tf.einsum("bph,hg->bpg", h, self.cell.recurrent_kernel)
                 + tf.gather(per_code, code))  # [B, M, 4H]
        h, _ = self._lstm_update(tf.split(gates, 4, axis=-1), c)
        p = tf.nn.softmax(self.heads[last](h))  # [B, M, K_L]
        collapsed = tf.one_hot(self._collapse_code, self.sizes[last])
        grid = probs[:, :, None] * collapsed[None, None, :]  # [B, Q, K_L]: every prefix on one leaf
        rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(kept))
        updates = tf.gather(probs, kept, batch_dims=1)[:, :, None] * (p - collapsed[None, None, :])
        grid = tf.tensor_scatter_nd_add(grid, tf.stack([rows, kept], axis=-1), updates)
        return tf.reshape(grid, [batch, -1])

    def _lstm_update(self, gates: Sequence[tf.Tensor], c: tf.Tensor):
        """`self.cell`'s update from the pre-activations of its gates (i, f, c, o; each [..., H])
        and the cell state c: returns the new (h, c)."""
        i, f, g, o = gates
        gate = self.cell.recurrent_activation
        c = gate(f) * c + gate(i) * self.cell.activation(g)
        return gate(o) * self.cell.activation(c), c

    def beam(self, inputs: Mapping[str, tf.Tensor], width: int):
        """The leaves of a beam search over code paths.

        Returns (probabilities [B, P], decoded values in transformed units [B, P], codes [B, P, L]);
        P = K_1 with one level, else K_1 · min(width, ·) · K_L; probabilities renormalised to sum
        to 1.
        """
        return self._beam(self.encoder(inputs), width)

    def _beam(self, context: tf.Tensor, width: int):
        """`beam` from the encoded features [B, D]."""
        batch = tf.shape(context)[0]
        state = self._start_state(context)
        previous = tf.tile(self.start, [batch, 1])
        path_probs = tf.ones([batch, 1])
        path_values = tf.zeros([batch, 1])
        path_codes = tf.zeros([batch, 1, 0], tf.int64)
        is_zero = tf.zeros([batch, 1], tf.bool)
        paths = 1
        for level, size in enumerate(self.sizes):
            logits, state = self._step(level, previous, context, state)
            p = tf.reshape(tf.nn.softmax(logits), [batch, paths, size])
            centroids = tf.constant(self.levels[level])
            if level > 0:  # a zero-coded prefix decodes to 0 whatever follows: keep it as one path
                one_hot = tf.one_hot(tf.zeros([batch, paths], tf.int32), size)
                p = tf.where(is_zero[:, :, None], one_hot, p)
            joint = tf.reshape(path_probs[:, :, None] * p, [batch, paths * size])
            values = tf.reshape(path_values[:, :, None] + centroids[None, None, :], [batch, paths * size])
            parent = tf.repeat(tf.range(paths), size)[None, :] + tf.zeros([batch, 1], tf.int32)
            code = tf.tile(tf.range(size, dtype=tf.int64), [paths])[None, :] + tf.zeros([batch, 1], tf.int64)
            if level == 0 and level + 1 < len(self.sizes):
                kept, path_probs, path_values = paths * size, joint, values  # every first-level code
            elif level + 1 < len(self.sizes):
                # Under each first-level code, the `width` most probable prefixes.
                groups = self.sizes[0]
                per_group = paths * size // groups
                kept = groups * min(width, per_group)
                top, index = tf.math.top_k(tf.reshape(joint, [batch, groups, per_group]), k=kept // groups)
                path_probs = tf.reshape(top, [batch, kept])
                index = tf.reshape(index + tf.range(groups)[None, :, None] * per_group, [batch, kept])
                parent = tf.gather(parent, index, batch_dims=1)
                code = tf.gather(code, index, batch_dims=1)
                path_values = tf.gather(values, index, batch_dims=1)
            else:
                kept, path_probs, path_values = paths * size, joint, values
            path_codes = tf.concat([tf.gather(path_codes, parent, batch_dims=1), code[:, :, None]], axis=2)
            is_zero = tf.gather(is_zero, parent, batch_dims=1)
            if level == 0:
                is_zero = is_zero | (code == codebook.ZERO_CODE)
            if level + 1 < len(self.sizes):
                state = [tf.reshape(tf.gather(tf.reshape(s, [batch, paths, -1]), parent, batch_dims=1),
                                    [batch * kept, -1]) for s in state]
                context = tf.repeat(context, kept, axis=0) if paths == 1 else tf.reshape(
                    tf.gather(tf.reshape(context, [batch, paths, -1]), parent, batch_dims=1), [batch * kept, -1])
                previous = self.code_embeddings[level](tf.reshape(code, [-1]))
            paths = kept
        path_values = tf.where(is_zero, tf.zeros_like(path_values), path_values)
        probs = path_probs / tf.reduce_sum(path_probs, axis=1, keepdims=True)
        return probs, path_values, path_codes

    def _greedy_walk(self, context: tf.Tensor):
        """The greedy code path from the encoded features [B, D]: (codes [B, L], its decoded value [B]
        and the chained expectation E_1 + P(not zero) · Σ_{l>1} E_l [B] along it, both in transformed
        units), where E_l is the
        probability-weighted mean centroid of level l given the codes chosen above it (the decoded
        value of training, with the model's own codes instead of the true ones)."""
        batch = tf.shape(context)[0]
        state = self._start_state(context)
        previous = tf.tile(self.start, [batch, 1])
        codes, expected = [], []
        for level in range(len(self.sizes)):
            logits, state = self._step(level, previous, context, state)
            p = tf.nn.softmax(logits)
            expected.append(tf.linalg.matvec(p, tf.constant(self.levels[level])))
            if level == 0:
                nonzero = 1.0 - p[:, codebook.ZERO_CODE]
            codes.append(tf.argmax(p, axis=1))
            previous = self.code_embeddings[level](codes[-1])
        codes = tf.stack(codes, axis=1)
        expectation = expected[0] + nonzero * tf.add_n(expected[1:]) if len(expected) > 1 else expected[0]
        return codes, self._decode(codes), expectation

    def serving_outputs(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """Serving outputs, all in label units: `prediction`, `median`, `lower`/`upper` (the
        INTERVAL_QUANTILES of the predictive distribution) [B], and greedy `codes` [B, L]."""
        if self.decoding in ("tree", "pruned"):
            probs = self.leaf_probabilities(inputs, self.beam_width if self.decoding == "pruned" else 0)
            # The leaves' values are fixed, so their order is too: one column permutation sorts every row.
            sorted_probs = tf.gather(probs, self._leaf_order, axis=1)
            outputs = {"prediction": tf.linalg.matvec(probs, self._leaf_values), "codes": self._greedy_codes(probs)}
            outputs.update(_quantiles(sorted_probs, self._sorted_leaf_values))
            return outputs
        context = self.encoder(inputs)  # once for the beam and the greedy walk
        probs, values_t, _ = self._beam(context, self.beam_width)
        values = label_transform.inverse(values_t, self.label_transform_name)
        order = tf.argsort(values, axis=1, stable=True)
        codes, greedy_value, expectation = self._greedy_walk(context)
        outputs = {"codes": codes}
        if self.decoding == "beam":
            outputs["prediction"] = tf.reduce_sum(probs * values, axis=1)
        elif self.decoding == "greedy":
            outputs["prediction"] = label_transform.inverse(greedy_value, self.label_transform_name)
        else:
            outputs["prediction"] = label_transform.inverse(expectation, self.label_transform_name)
        outputs.update(_quantiles(tf.gather(probs, order, batch_dims=1), tf.gather(values, order, batch_dims=1)))
        return outputs

    def _greedy_codes(self, probs: tf.Tensor, sizes: Sequence[int] = ()) -> tf.Tensor:
        """Coarse to fine: the most probable code of each level given the codes chosen above it, [B, L],
        from the probabilities of the code paths through the first len(sizes) levels (default: all)."""
        sizes = list(sizes or self.sizes)
        joint = tf.reshape(probs, [-1] + sizes)
        codes = []
        for level in range(len(sizes)):
            marginal = tf.reduce_sum(joint, axis=list(range(2, len(sizes) - level + 1)))
            code = tf.argmax(marginal, axis=1)
            codes.append(code)
            joint = tf.gather(joint, code, axis=1, batch_dims=1)
        return tf.stack(codes, axis=1)


def _quantiles(sorted_probs: tf.Tensor, sorted_values: tf.Tensor) -> Dict[str, tf.Tensor]:
    """`median`, `lower` and `upper` [B] of discrete distributions: probabilities [B, P] of values
    in ascending order, the values [P] shared by every row or [B, P] per row.

    The q-quantile is the first value whose cumulative probability reaches q (the last value if
    rounding leaves the total below q), found by a binary search of each row's cumulative sum.
    """
    lower_q, upper_q = base.INTERVAL_QUANTILES
    cumulative = tf.cumsum(sorted_probs, axis=1)
    levels = tf.broadcast_to(tf.constant([[0.5, lower_q, upper_q]], cumulative.dtype), [tf.shape(cumulative)[0], 3])
    ranks = tf.minimum(tf.searchsorted(cumulative, levels, side="left"), tf.shape(cumulative)[1] - 1)
    batch_dims = 1 if sorted_values.shape.rank == 2 else 0
    median, lower, upper = tf.unstack(tf.gather(sorted_values, ranks, batch_dims=batch_dims), axis=1)
    return {"median": median, "lower": lower, "upper": upper}


class SamplingSchedule(keras.callbacks.Callback):
    """Raises the scheduled-sampling rate linearly from 0 to `maximum` over `total_steps` batches."""

    def __init__(self, rate: tf.Variable, maximum: float, total_steps: int):
        super().__init__()
        self._rate = rate
        self._maximum = maximum
        self._total = max(int(total_steps), 1)
        self._step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._rate.assign(self._maximum * min(1.0, self._step / self._total))
        self._step += 1
