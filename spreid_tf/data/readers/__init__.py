"""One module per benchmark; each draws its raw tree and describes the benchmark in `INFO`.

spreid_tf.data.registry collects the INFOs; spreid_tf.data.synthetic writes the miniatures.
"""
