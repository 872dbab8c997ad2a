"""Benchmark data: TFRecord schema, readers, converters, tf.data pipelines, synthetic miniatures."""
