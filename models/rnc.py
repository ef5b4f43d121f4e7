"""Rank-N-Contrast (Zha et al., NeurIPS 2023): a representation loss that orders embeddings by label.

For anchor i and every other sample j, with similarity s_ij = -||v_i - v_j||_2 and temperature τ:
    l_ij = -log( exp(s_ij/τ) / Σ_{k≠i, |y_i-y_k| >= |y_i-y_j|} exp(s_ik/τ) )
and the loss is the mean of l_ij over all ordered pairs i≠j: samples whose labels are closer to
the anchor's must be closer to it in the embedding than every sample whose label is farther.
RQ-Reg applies it to the code embeddings so that their space follows the order of target values.

The denominator is a suffix sum: sorting each anchor's others by label distance, descending,
the set {k: d_ik >= d_ij} is a prefix (ties included), so one cumulative sum per anchor gives
every denominator in O(N² log N) rather than O(N³).

The loss is batch-wise: every sample is compared with every other one. Under a multi-replica
strategy (the Trainer's MirroredStrategy on several GPUs) each replica holds a slice of the batch,
so `rnc_loss` first gathers the whole batch from every replica (`global_batch`) and every replica
computes the loss of the whole batch: its value does not depend on the number of replicas. Keras
divides each replica's loss by the number of replicas and sums the gradients, and the gradient of
the gather sums over the replicas too, so the update is the one-device update.
"""

import tensorflow as tf


def global_batch(*tensors: tf.Tensor):
    """The tensors of the whole batch: under a strategy with several replicas, each replica's slice
    gathered along axis 0 (in replica order); otherwise the tensors as they are."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return tuple(context.all_gather(t, axis=0) for t in tensors)


def rnc_loss(embeddings: tf.Tensor, labels: tf.Tensor, temperature: float = 2.0) -> tf.Tensor:
    """Mean Rank-N-Contrast loss of a batch (the global batch under several replicas: module docstring).

    Args:
      embeddings: [N, D] sample representations.
      labels: [N] (or [N, 1]) target values; L1 distance between labels defines the ranking.
      temperature: τ.

    Returns:
      A scalar; 0 for a batch of fewer than 2 samples.
    """
    embeddings, labels = global_batch(tf.cast(embeddings, tf.float32), tf.reshape(tf.cast(labels, tf.float32), [-1]))
    n = tf.shape(labels)[0]
    squared = tf.reduce_sum(tf.square(embeddings[:, None, :] - embeddings[None, :, :]), axis=-1)
    logits = -tf.sqrt(squared + 1e-12) / temperature  # [N, N]
    distance = tf.abs(labels[:, None] - labels[None, :])  # [N, N]
    off_diagonal = 1.0 - tf.eye(n)
    # Sort each anchor's row by label distance, descending; the anchor itself goes last (-1).
    sort_key = tf.where(off_diagonal > 0, distance, -tf.ones_like(distance))
    order = tf.argsort(sort_key, axis=1, direction="DESCENDING", stable=True)
    sorted_key = tf.gather(sort_key, order, batch_dims=1)
    sorted_logits = tf.gather(logits, order, batch_dims=1)
    row_max = tf.stop_gradient(tf.reduce_max(sorted_logits, axis=1, keepdims=True))
    exp = tf.exp(sorted_logits - row_max) * tf.gather(off_diagonal, order, batch_dims=1)
    prefix = tf.cumsum(exp, axis=1)
    # Include ties: the denominator of position p is the prefix sum up to the last equal distance.
    last_tie = tf.searchsorted(-sorted_key, -sorted_key, side="right") - 1
    denominator = tf.gather(prefix, last_tie, batch_dims=1)
    pair_loss = -(sorted_logits - row_max - tf.math.log(denominator + 1e-12))
    valid = tf.gather(off_diagonal, order, batch_dims=1)
    pairs = tf.reduce_sum(valid)
    return tf.math.divide_no_nan(tf.reduce_sum(pair_loss * valid), pairs)
