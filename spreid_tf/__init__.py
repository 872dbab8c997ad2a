"""spreid_tf: SPReID (Kalayeh et al., CVPR 2018) in TensorFlow / Keras 3.

Person re-identification with human semantic parsing: a human-parsing model
(dilated InceptionV3 + ASPP trained on LIP) gives soft body-part maps that pool
the features of a re-id backbone.
"""

__version__ = "0.1.0"
