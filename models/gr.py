"""GR: generative regression — a value written as a short sequence of descending vocabulary tokens.

Ma et al., "Generative Regression Based Watch Time Prediction for Short-Video Recommendation"
(arXiv 2412.20211). A label y is scaled to integer units u = round(y · scale) and written greedily
as a sum of numeric tokens, largest first: u ≈ v_{k1} + v_{k2} + … with v_{k1} >= v_{k2} >= ….
A Transformer decoder, cross-attending to the encoded features, generates that sequence token by
token; a sequence's value is the sum of its tokens divided by `scale`.

Vocabulary (dynamic quantile adjustment, the paper's Algorithm 1), from the TRAINING labels only:
  R ← u; q ← Q_START; repeat: z = floor(quantile_q(R)); stop if z < 1;
  R ← R - z where R >= z; keep z; q ← max(Q_END, Q_DECAY · q);
  until max(R / max(u, 1)) <= REMAINDER_TOLERANCE or MAX_NUMERIC_TOKENS tokens are kept.
The token 1 is always added (completeness: every integer is representable); tokens are unique
and sorted descending. Vocabulary ids: PAD, START, END, then the numeric tokens, largest first.

Loss = CE(tokens, ignoring PAD) + λ · Huber(y / value_unit, ŷ_soft / value_unit), where ŷ_soft is
the windowed soft-argmax Σ_t Σ_{|k - argmax_t| <= W} p_t(k) · v_k / scale over the label's
numeric positions t, and value_unit is the mean positive training label (so the Huber term has the
same size for dollars and for seconds).

Curriculum learning with embedding mixup (CLEM): in training, a first teacher-forced pass gives
token distributions p_t; in the second pass, the input at position t+1 is, with probability
r(step), the mixture Σ_k p_t(k) · E[k] (gradient stopped through p_t) instead of the embedding of
the true token. The teacher-forcing probability 1 - r decays from 1 as
r(step) = r_max · (1 - exp(-step / (CURRICULUM_FRACTION · total_steps))), set before every batch
by `CurriculumSchedule` (the kind's training callback). The loss is taken on the second pass.

Serving decodes greedily, at most max_tokens + 1 steps: END when P(END | prefix) >= 1/2, else the
most probable numeric token no larger than the previous one. The prediction is, as in the GR
code's evaluation, the windowed soft-argmax summed over the numeric steps of that path, / scale;
`tokens` holds the path (the plain sum of its token values is the hard decode). One addition for
zero-inflated labels (which the paper's watch time does not have): the value path does not stop
at the first step, and its value is weighed by P(not END first) — see `greedy_decode`. A second
addition, `first_tokens` = K (config `gr_first_tokens`, default 16 in pipeline.config): the greedy
paths of the K likeliest first tokens are decoded and averaged by their renormalised probabilities,
because the single greedy path follows the mode, which ranks bimodal values backwards (K = 1 is the
paper's decode). Decoding runs the decoder blocks on the newest position only at each step
(`_decode_step`), with the self-attention keys and values of earlier positions cached and the
cross-attention to the single memory token computed once; it equals the full causal pass.

Simplifications vs. the paper and its code: the scale is chosen from the training labels
(`default_label_scale`) instead of a fixed 1000; the vocabulary is bounded and always holds 1;
label sequences are truncated to `max_tokens` numeric tokens; pre-LN decoder blocks with learned
positions and no dropout; the mixup draw is per example and position (the code shares one draw
per position across the batch); greedy decoding only admits non-increasing tokens and weighs END
against all numeric tokens together (a plain argmax pits END against each numeric token alone and,
when the first token's probability is spread over many tokens, stops at once: 77% zero predictions
on a synthetic watch-time set). The decoder gives no calibrated distribution over sums, so
`serving_outputs` gives the prediction itself as `median`, `lower` and `upper` (`base.point_outputs`);
the served interval is the split-conformal one around it (`models.calibration`).
"""

import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models import base
from models.layers import output_head

PAD, START, END = 0, 1, 2
NUM_SPECIAL = 3
TOKENS_KEY = "tokens"
VALUE_KEY = "value"
# Where the train and test steps put the target tokens, so that `call` can teacher-force.
TEACHER_TOKENS_KEY = "gr_teacher_tokens"

Q_START = 0.9999
Q_END = 0.9
Q_DECAY = 0.99
# Stop adding tokens once every training label's remainder is at most this share of the label.
REMAINDER_TOLERANCE = 1e-3
MAX_NUMERIC_TOKENS = 64
# The default scale is the power of ten that makes the median positive label at least this many units.
MEDIAN_LABEL_UNITS = 1000.0
MAX_SEQUENCE_TOKENS = 12
SOFT_ARGMAX_HALF_WINDOW = 10
# Greedy decoding stops when P(END | prefix) reaches this.
STOP_PROBABILITY = 0.5
# Final probability of feeding the mixture instead of the true token. The GR code starts at 0.5 and
# rises towards 1; capping at 0.5 keeps half of the inputs teacher-forced.
MIXUP_PROBABILITY = 0.5
# The mixup rate reaches 1 - 1/e of its maximum after this share of the training steps.
CURRICULUM_FRACTION = 0.25


def default_label_scale(labels: np.ndarray) -> float:
    """The power of ten that gives the median positive label at least MEDIAN_LABEL_UNITS units.

    scale = 10^ceil(log10(MEDIAN_LABEL_UNITS / median(y | y > 0))); 1 when no label is positive.
    E.g. a median purchase of $40 gives scale 100 (cents), a median watch time of 20 s gives 100.
    """
    positive = labels[labels > 0]
    if positive.size == 0:
        return 1.0
    return float(10.0 ** math.ceil(math.log10(MEDIAN_LABEL_UNITS / float(np.median(positive)))))


def build_vocabulary(units: np.ndarray) -> np.ndarray:
    """Numeric token values from integer label units by dynamic quantile adjustment (GR, Algorithm 1).

    Args:
      units: training labels in integer units, [N], non-negative.

    Returns:
      Unique token values, sorted descending, always ending with 1; at most MAX_NUMERIC_TOKENS + 1.
    """
    remainder = np.asarray(units, dtype=np.float64)
    reference = np.maximum(remainder, 1.0)
    tokens, q = [], Q_START
    while remainder.size and len(tokens) < MAX_NUMERIC_TOKENS:
        z = math.floor(float(np.quantile(remainder, q)))
        if z < 1:
            break
        remainder = np.where(remainder >= z, remainder - z, remainder)
        tokens.append(float(z))
        q = max(Q_END, Q_DECAY * q)
        if np.max(remainder / reference) <= REMAINDER_TOLERANCE:
            break
    return np.array(sorted(set(tokens) | {1.0}, reverse=True))


def greedy_counts(units: tf.Tensor, token_values: np.ndarray) -> tf.Tensor:
    """How often each token is taken by the greedy decomposition, largest token first.

    c_k = floor(r_k / v_k), r_{k+1} = r_k - c_k · v_k, r_1 = u.

    Args:
      units: integer label units, [B], float64.
      token_values: numeric token values, descending, [K].

    Returns:
      Counts [B, K], float64.
    """
    remainder = units
    counts = []
    for value in token_values:
        count = tf.floor(remainder / value)
        remainder -= count * value
        counts.append(count)
    return tf.stack(counts, axis=1)


def encode(units: tf.Tensor, token_values: np.ndarray, max_tokens: int) -> tf.Tensor:
    """Token ids of the greedy decomposition: numeric tokens (largest first, at most max_tokens), END, PADs.

    Args:
      units: integer label units, [B], float64 (0 encodes as END alone).
      token_values: numeric token values, descending, [K].
      max_tokens: the longest numeric prefix kept; the remainder beyond it is dropped.

    Returns:
      Token ids [B, max_tokens + 1], int64.
    """
    ends = tf.cumsum(greedy_counts(units, token_values), axis=1)
    length = tf.minimum(ends[:, -1:], float(max_tokens))
    positions = tf.range(max_tokens + 1, dtype=tf.float64)[None, :]
    token_index = tf.reduce_sum(tf.cast(ends[:, None, :] <= positions[:, :, None], tf.int64), axis=2)
    special = tf.where(positions == length, tf.constant(END, tf.int64), tf.constant(PAD, tf.int64))
    return tf.where(positions < length, NUM_SPECIAL + token_index, special)


def decode_units(token_ids: tf.Tensor, id_values: tf.Tensor) -> tf.Tensor:
    """Sum of the token values before the first END, [B], from ids [B, T] and the value of every id [V]."""
    token_ids = tf.cast(token_ids, tf.int64)
    before_end = tf.cumsum(tf.cast(token_ids == END, tf.float32), axis=1, exclusive=True) == 0
    values = tf.gather(id_values, token_ids)
    return tf.reduce_sum(tf.where(before_end, values, tf.zeros_like(values)), axis=1)


def windowed_soft_argmax(logits: tf.Tensor, id_values: tf.Tensor, half_window: int) -> tf.Tensor:
    """Per position, Σ_{|k - argmax| <= half_window} p(k) · v_k (not renormalised), [B, T].

    Args:
      logits: [B, T, V].
      id_values: value of every id, [V] (0 for PAD, START and END).
      half_window: W, in vocabulary ids.
    """
    probabilities = tf.nn.softmax(logits)
    top = tf.argmax(logits, axis=-1, output_type=tf.int32)[:, :, None]
    ids = tf.range(tf.shape(logits)[-1])[None, None, :]
    window = tf.cast(tf.abs(ids - top) <= half_window, probabilities.dtype)
    return tf.reduce_sum(probabilities * window * id_values, axis=-1)


def mixup_rate(step: int, total_steps: int, maximum: float) -> float:
    """r(step) = maximum · (1 - exp(-step / (CURRICULUM_FRACTION · total_steps))): chance of feeding the mixture."""
    return maximum * (1.0 - math.exp(-step / (CURRICULUM_FRACTION * max(total_steps, 1))))


class CurriculumSchedule(keras.callbacks.Callback):
    """Sets the CLEM mixup rate before every training batch to `mixup_rate(batches so far, ...)`."""

    def __init__(self, rate: tf.Variable, maximum: float, total_steps: int):
        super().__init__()
        self._rate = rate
        self._maximum = maximum
        self._total = total_steps
        self._step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._rate.assign(mixup_rate(self._step, self._total, self._maximum))
        self._step += 1


def masked_token_crossentropy(target_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example mean cross-entropy over the non-PAD positions, [B]; target_ids [B, T], logits [B, T, V]."""
    target_ids = tf.cast(target_ids, tf.int32)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_ids, logits=logits)
    mask = tf.cast(target_ids != PAD, cross_entropy.dtype)
    return tf.reduce_sum(cross_entropy * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


class DecoderBlock(keras.layers.Layer):
    """Pre-LN Transformer decoder block: causal self-attention, cross-attention to a memory, FFN.

    x ← x + SelfAttn(LN(x)); x ← x + CrossAttn(LN(x), memory); x ← x + FFN(LN(x)).
    Inputs: x [B, T, d_model], memory [B, M, d_model]. Output: [B, T, d_model].
    """

    def __init__(self, d_model: int, num_heads: int, ffn_units: int, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.ffn_units = d_model, num_heads, ffn_units
        key_dim = d_model // num_heads
        self.self_attention = keras.layers.MultiHeadAttention(num_heads, key_dim, name="self_attention")
        self.cross_attention = keras.layers.MultiHeadAttention(num_heads, key_dim, name="cross_attention")
        self.ffn_hidden = keras.layers.Dense(ffn_units, activation="relu", name="ffn_hidden")
        self.ffn_output = keras.layers.Dense(d_model, name="ffn_output")
        self.norms = [keras.layers.LayerNormalization(name=f"norm_{i}") for i in range(3)]

    def call(self, x: tf.Tensor, memory: tf.Tensor) -> tf.Tensor:
        h = self.norms[0](x)
        x = x + self.self_attention(h, h, use_causal_mask=True)
        x = x + self.cross_attention(self.norms[1](x), memory)
        return self._feed_forward(x)

    def cross_term(self, memory: tf.Tensor) -> tf.Tensor:
        """The cross-attention output for a memory of one token, [B, 1, d_model]: with a single key
        every attention weight is 1, so the output is the same whatever the query, at every position."""
        if memory.shape[1] != 1:
            raise ValueError(f"cross_term needs a memory of one token, got shape {memory.shape}")
        return self.cross_attention(memory, memory)

    def step(self, x: tf.Tensor, cross: tf.Tensor, cache):
        """The block's output at a new position, [B, 1, d_model], from its input there x [B, 1, d_model].

        `cross` is `cross_term(memory)`; `cache` holds the self-attention keys and values of the
        earlier positions ([B, t, heads, key_dim] each; None at the first position). Returns the
        output and the cache extended by this position: what `call` gives at the last position of
        the whole sequence (causal attention lets it see every earlier position), computing the
        keys and values of each position once.
        """
        attention = self.self_attention
        h = self.norms[0](x)
        if not attention._built_from_signature:  # a model decoding before it has been called
            attention._build_from_signature(query=h, value=h)
        keys, values = attention._key_dense(h), attention._value_dense(h)
        if cache is not None:
            keys, values = tf.concat([cache[0], keys], axis=1), tf.concat([cache[1], values], axis=1)
        attended, _ = attention._compute_attention(attention._query_dense(h), keys, values)
        x = x + attention._output_dense(attended) + cross
        return self._feed_forward(x), (keys, values)

    def _feed_forward(self, x: tf.Tensor) -> tf.Tensor:
        return x + self.ffn_output(self.ffn_hidden(self.norms[2](x)))

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads,
                "ffn_units": self.ffn_units}


class GRModel(base.ValueModel):
    """Feature encoder (one memory token) -> Transformer decoder over value tokens (GR, arXiv 2412.20211).

    Args:
      context: the training context; the vocabulary is built from `context.train_labels` only.
      embedding_dim, hidden_units: sizes of the shared feature encoder.
      regression_weight: λ, the weight of the Huber term on the windowed soft-argmax value.
      mixup_probability: r_max of the CLEM curriculum; 0 trains with teacher forcing only.
      label_scale: labels are written in units of 1 / label_scale; None picks `default_label_scale`.
      d_model, num_heads, num_layers, ffn_units: decoder sizes.
      max_tokens: longest numeric token sequence; sequences have max_tokens + 1 positions (END).
      half_window: W of the windowed soft-argmax.
      first_tokens: K, the likeliest first tokens whose paths the prediction averages (1: plain greedy).

    Outputs of `call`: `tokens` logits [B, T, V] and `value` = ŷ / value_unit [B]; teacher-forced
    when the inputs hold TEACHER_TOKENS_KEY (as in `fit` and `evaluate`), greedily decoded otherwise.
    """

    def __init__(self, context: base.TrainContext, embedding_dim: int = 16, hidden_units: Sequence[int] = (64, 64),
                 regression_weight: float = 1.0, mixup_probability: float = MIXUP_PROBABILITY,
                 label_scale: Optional[float] = None, d_model: int = 64,
                 num_heads: int = 4, num_layers: int = 2, ffn_units: int = 128,
                 max_tokens: int = MAX_SEQUENCE_TOKENS, half_window: int = SOFT_ARGMAX_HALF_WINDOW,
                 first_tokens: int = 1, **kwargs):
        super().__init__(context, embedding_dim, hidden_units, **kwargs)
        if label_scale is not None and label_scale <= 0:
            raise ValueError(f"gr_label_scale: {label_scale} must be positive")
        if first_tokens < 1:
            raise ValueError(f"gr_first_tokens: {first_tokens} must be at least 1")
        labels = np.maximum(np.asarray(context.train_labels, dtype=np.float64), 0.0)
        self.scale = label_scale or default_label_scale(labels)
        self.token_values = build_vocabulary(np.round(labels * self.scale))
        self.id_values = tf.constant(np.concatenate([np.zeros(NUM_SPECIAL), self.token_values]), tf.float32)
        self.vocab_size = NUM_SPECIAL + len(self.token_values)
        positive = labels[labels > 0]
        self.value_unit = float(np.mean(positive)) if positive.size else 1.0
        self.regression_weight = regression_weight
        self.mixup_probability = mixup_probability
        # Probability of feeding the first pass's token mixture instead of the true token (CLEM).
        self.mixup_rate = tf.Variable(0.0, trainable=False, name="mixup_rate")
        self.max_tokens = max_tokens
        self.sequence_length = max_tokens + 1
        self.half_window = half_window
        self.first_tokens = first_tokens
        self.memory = keras.layers.Dense(d_model, name="memory")
        self.token_embedding = keras.layers.Embedding(self.vocab_size, d_model, name="token_embedding")
        self.position_embedding = self.add_weight(name="position_embedding", shape=(self.sequence_length, d_model),
                                                  initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.blocks = [DecoderBlock(d_model, num_heads, ffn_units, name=f"decoder_{i}") for i in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(name="final_norm")
        self.logits = output_head(self.vocab_size, "logits")

    @classmethod
    def from_config_and_context(cls, config: Mapping, context: base.TrainContext) -> "GRModel":
        return cls(context, embedding_dim=config["embedding_dim"], hidden_units=config["hidden_units"],
                   regression_weight=config.get("gr_regression_weight", 1.0),
                   mixup_probability=config.get("gr_mixup_probability", MIXUP_PROBABILITY),
                   label_scale=config.get("gr_label_scale"), first_tokens=config.get("gr_first_tokens", 1))

    def training_callbacks(self, total_steps: int):
        """The CLEM curriculum: the mixup rate rises from 0 towards mixup_probability."""
        if self.mixup_probability <= 0:
            return []
        return [CurriculumSchedule(self.mixup_rate, self.mixup_probability, total_steps)]

    def loss_config(self):
        """Token cross-entropy (PAD ignored) + regression_weight · Huber on the soft-argmax value."""
        return ({TOKENS_KEY: masked_token_crossentropy, VALUE_KEY: keras.losses.Huber(delta=1.0)},
                {TOKENS_KEY: 1.0, VALUE_KEY: self.regression_weight})

    def encode_labels(self, labels: tf.Tensor) -> tf.Tensor:
        """Token ids [B, T] of labels in label units [B]."""
        units = tf.round(tf.maximum(tf.cast(labels, tf.float64), 0.0) * self.scale)
        return encode(units, self.token_values, self.max_tokens)

    def decode_labels(self, token_ids: tf.Tensor) -> tf.Tensor:
        """Label units [B] of token ids [B, T]: the sum of the token values before END, / scale."""
        return decode_units(token_ids, self.id_values) / self.scale

    def training_targets(self, inputs: Mapping[str, tf.Tensor], target: tf.Tensor) -> Dict[str, tf.Tensor]:
        """The label's token ids and the label in value units."""
        labels = self.label_units(target)
        return {TOKENS_KEY: self.encode_labels(labels), VALUE_KEY: labels / self.value_unit}

    def train_step(self, data):
        return super().train_step(self._with_teacher_tokens(data))

    def test_step(self, data):
        return super().test_step(self._with_teacher_tokens(data))

    @staticmethod
    def _with_teacher_tokens(data):
        """(x, y, w) -> (x + {TEACHER_TOKENS_KEY: y[TOKENS_KEY]}, y, w), so `call` can teacher-force."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return keras.utils.pack_x_y_sample_weight({**x, TEACHER_TOKENS_KEY: y[TOKENS_KEY]}, y, sample_weight)

    def _memory(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Encoded features as one memory token, [B, 1, d_model]."""
        return self.memory(self.encoder(inputs))[:, None, :]

    def _decode(self, embedded: tf.Tensor, memory: tf.Tensor) -> tf.Tensor:
        """Logits [B, t, V] from input embeddings [B, t, d_model] (positions added here)."""
        x = embedded + self.position_embedding[None, :tf.shape(embedded)[1]]
        for block in self.blocks:
            x = block(x, memory)
        return self.logits(self.final_norm(x))

    def _cross_terms(self, memory: tf.Tensor) -> list:
        """Per decoder block, its cross-attention output for `memory` (`DecoderBlock.cross_term`)."""
        return [block.cross_term(memory) for block in self.blocks]

    def _decode_step(self, embedded: tf.Tensor, crosses: list, caches: list) -> tf.Tensor:
        """Logits [B, V] of the newest position, from its input embedding [B, 1, d_model].

        `crosses` is `_cross_terms(memory)`; `caches` holds, per decoder block, the self-attention
        keys and values of the earlier positions (None before the first step) and is extended in
        place. The result equals `_decode(all embeddings so far, memory)[:, -1]`.
        """
        position = 0 if caches[0] is None else int(caches[0][0].shape[1])
        x = embedded + self.position_embedding[None, position:position + 1]
        for i, block in enumerate(self.blocks):
            x, caches[i] = block.step(x, crosses[i], caches[i])
        return self.logits(self.final_norm(x))[:, 0]

    def _input_ids(self, target_ids: tf.Tensor) -> tf.Tensor:
        """Teacher-forcing inputs: START, then the targets shifted right by one, [B, T]."""
        start = tf.fill([tf.shape(target_ids)[0], 1], tf.constant(START, target_ids.dtype))
        return tf.concat([start, target_ids[:, :-1]], axis=1)

    def _mixup_inputs(self, embedded: tf.Tensor, first_logits: tf.Tensor) -> tf.Tensor:
        """CLEM inputs: past position 0, each true-token embedding becomes, with probability mixup_rate
        (per example and position), the mixture softmax(first-pass logits of the previous position) · E."""
        probabilities = tf.stop_gradient(tf.nn.softmax(first_logits[:, :-1]))
        mixture = tf.cast(tf.linalg.matmul(probabilities, self.token_embedding.embeddings), embedded.dtype)
        use_mixture = tf.random.uniform(tf.shape(mixture)[:2])[:, :, None] < self.mixup_rate
        return tf.concat([embedded[:, :1], tf.where(use_mixture, mixture, embedded[:, 1:])], axis=1)

    def _teacher_forced(self, target_ids: tf.Tensor, memory: tf.Tensor, training) -> tf.Tensor:
        """Logits [B, T, V]: one teacher-forced pass, and in training a second CLEM pass on its outputs."""
        embedded = self.token_embedding(self._input_ids(tf.cast(target_ids, tf.int64)))
        logits = self._decode(embedded, memory)
        if training and self.mixup_probability > 0:
            logits = self._decode(self._mixup_inputs(embedded, logits), memory)
        return logits

    def _allowed(self, previous: tf.Tensor, last: bool) -> tf.Tensor:
        """Ids the greedy decoder may emit after `previous` [B], as a mask [B, V]: END, and unless at the
        last position the numeric tokens no larger than the previous numeric token (any after START)."""
        ids = tf.range(self.vocab_size, dtype=tf.int64)[None, :]
        is_end = tf.broadcast_to(ids == END, [tf.shape(previous)[0], self.vocab_size])
        if last:
            return is_end
        return tf.logical_or(is_end, ids >= tf.maximum(previous, NUM_SPECIAL)[:, None])

    def stop_probability(self, logits: tf.Tensor, previous: tf.Tensor, last: bool) -> tf.Tensor:
        """P(END) among the ids allowed after `previous`, [B]."""
        allowed = self._allowed(previous, last)
        return tf.nn.softmax(tf.where(allowed, logits, tf.float32.min))[:, END]

    def next_token(self, logits: tf.Tensor, previous: tf.Tensor, last: bool, may_stop: bool = True) -> tf.Tensor:
        """The next token [B]: END when its probability among the allowed ids reaches STOP_PROBABILITY
        (stopping is likelier than going on) or at the last position, else the likeliest allowed numeric
        token; with may_stop=False (and not last) always the numeric token."""
        allowed = self._allowed(previous, last)
        numeric = tf.logical_and(allowed, tf.range(self.vocab_size)[None, :] != END)
        best_numeric = tf.argmax(tf.where(numeric, logits, tf.float32.min), axis=1)
        if not may_stop and not last:
            return best_numeric
        stop = self.stop_probability(logits, previous, last) >= STOP_PROBABILITY
        return tf.where(stop, tf.constant(END, tf.int64), best_numeric)

    @tf.autograph.experimental.do_not_convert
    def greedy_decode(self, inputs: Mapping[str, tf.Tensor]):
        """Greedy decoding up to END or the last position, optionally over several first tokens.

        A zero label is the sequence [END]. Where zeros are common (LTV: over half the labels) the
        first step's P(END) is near 1/2 for almost everyone, and a hard first decision predicts 0 for
        nearly every example, which ranks nothing. So the value path never stops at the first step:
        the prediction is P(not END first) times the value of the path decoded after a forced first
        numeric token, i.e. the hurdle mean. Without zeros P(END first) is near 0 and this is the
        plain greedy decode.

        With first_tokens = K > 1 the value path is decoded once for each of the K likeliest first
        numeric tokens k (probabilities p_k renormalised over those K), and the prediction is
        Σ_k p_k · (v_k / scale + the windowed soft-argmax of the later steps of path k), times
        P(not END first). The greedy path follows the mode of the first token; where the value is
        bimodal (a quick skip or a full view of a long video), that mode is the small value and
        the greedy prediction ranks such rows last (`first_tokens` in the model README section).

        Returns:
          token ids [B, T] (the greedy path: [END, PAD, ...] where stopping first is likelier; PAD
          after END), logits [B, T, V] of the value path of the likeliest first token, and the
          prediction [B] in label units.
        """
        memory = self._memory(inputs)
        batch = tf.shape(memory)[0]
        start = tf.fill([batch], tf.constant(START, tf.int64))
        crosses, first_caches = self._cross_terms(memory), [None] * len(self.blocks)
        first_logits = self._decode_step(self.token_embedding(start[:, None]), crosses, first_caches)
        if self.sequence_length == 1:  # no numeric token fits: the only sequence is [END]
            zero = tf.zeros([batch])
            return tf.fill([batch, 1], tf.constant(END, tf.int64)), first_logits[:, None], zero
        stop_first = self.stop_probability(first_logits, start, last=False)
        if self.first_tokens == 1:
            first = self.next_token(first_logits, start, last=False, may_stop=False)[:, None]
            weights = tf.ones([batch, 1])
            first_value = windowed_soft_argmax(first_logits[:, None], self.id_values, self.half_window)
        else:
            numeric = tf.where(tf.range(self.vocab_size)[None, :] >= NUM_SPECIAL, first_logits, tf.float32.min)
            top = tf.math.top_k(tf.nn.softmax(numeric), k=min(self.first_tokens, self.vocab_size - NUM_SPECIAL))
            first = tf.cast(top.indices, tf.int64)
            weights = top.values / tf.reduce_sum(top.values, axis=1, keepdims=True)
            first_value = tf.gather(self.id_values, first)
        width = tf.shape(first)[1]
        paths, path_logits, later_values = self._continue(
            tf.reshape(first, [-1]), [tf.repeat(cross, width, axis=0) for cross in crosses],
            [tuple(tf.repeat(t, width, axis=0) for t in cache) for cache in first_caches])
        path_values = first_value + tf.reshape(later_values, tf.shape(first))
        prediction = (1.0 - stop_first) * tf.reduce_sum(weights * path_values, axis=1) / self.scale
        token_ids = tf.concat([first[:, :1], paths[::width]], axis=1)
        logits = tf.concat([first_logits[:, None], path_logits[::width]], axis=1)
        zero_path = tf.concat([tf.fill([batch, 1], tf.constant(END, tf.int64)),
                               tf.fill([batch, self.sequence_length - 1], tf.constant(PAD, tf.int64))], axis=1)
        token_ids = tf.where((stop_first >= STOP_PROBABILITY)[:, None], zero_path, token_ids)
        return token_ids, logits, prediction

    @tf.autograph.experimental.do_not_convert
    def _continue(self, first: tf.Tensor, crosses: list, caches: list):
        """Greedy steps 2..T after the first numeric token `first` [R] (R paths; `crosses` and `caches`
        as in `_decode_step`, for the R paths after the START position).

        Returns the ids of steps 2..T [R, T-1] (PAD after END), their logits [R, T-1, V] and the sum of
        their windowed soft-argmax values up to END, in units [R].
        """
        rows = tf.shape(first)[0]
        ids = [tf.fill([rows], tf.constant(START, tf.int64)), first]
        caches = list(caches)
        finished = tf.zeros([rows], tf.bool)
        step_logits, soft_values = [], []
        for position in range(1, self.sequence_length):
            last = position == self.sequence_length - 1
            logits = self._decode_step(self.token_embedding(ids[-1][:, None]), crosses, caches)
            chosen = self.next_token(logits, ids[-1], last=last)
            chosen = tf.where(finished, tf.constant(PAD, tf.int64), chosen)
            finished = tf.logical_or(finished, chosen == END)
            soft = windowed_soft_argmax(logits[:, None], self.id_values, self.half_window)[:, 0]
            soft_values.append(tf.where(finished, tf.zeros_like(soft), soft))
            ids.append(chosen)
            step_logits.append(logits)
        return tf.stack(ids[2:], axis=1), tf.stack(step_logits, axis=1), tf.add_n(soft_values)

    # Only static Python control flow below: skipping AutoGraph conversion saves seconds of tracing.
    @tf.autograph.experimental.do_not_convert
    def call(self, inputs: Mapping[str, tf.Tensor], training=None) -> Dict[str, tf.Tensor]:
        if TEACHER_TOKENS_KEY not in inputs:
            _, logits, prediction = self.greedy_decode(inputs)
            return {TOKENS_KEY: logits, VALUE_KEY: prediction / self.value_unit}
        target_ids = inputs[TEACHER_TOKENS_KEY]
        logits = self._teacher_forced(target_ids, self._memory(inputs), training)
        per_position = windowed_soft_argmax(logits, self.id_values, self.half_window)
        numeric = tf.cast(target_ids >= NUM_SPECIAL, per_position.dtype)
        value = tf.reduce_sum(per_position * numeric, axis=1) / self.scale
        return {TOKENS_KEY: logits, VALUE_KEY: value / self.value_unit}

    @tf.autograph.experimental.do_not_convert
    def serving_outputs(self, inputs: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """The greedy path's soft-argmax value in label units as prediction, median, lower and upper [B];
        the greedy token ids [B, T] as `tokens`."""
        token_ids, _, prediction = self.greedy_decode(inputs)
        return {**base.point_outputs(prediction), TOKENS_KEY: token_ids}
