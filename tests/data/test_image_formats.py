import cv2
import numpy as np
import pytest
import tensorflow as tf

from spreid_tf.data import image_formats


@pytest.mark.parametrize("extension, name", [(".jpg", "jpeg"), (".png", "png"), (".bmp", "bmp")])
def test_sniffs_what_opencv_writes(extension, name):
    data = cv2.imencode(extension, np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    assert image_formats.sniff_format(data) == name


def test_sniffs_the_other_decode_image_formats_and_nothing_else():
    assert image_formats.sniff_format(b"GIF89a....") == "gif"
    assert image_formats.sniff_format(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "webp"
    assert image_formats.sniff_format(b"RIFF\x10\x00\x00\x00WAVEfmt ") is None
    assert image_formats.sniff_format(b"") is None and image_formats.sniff_format(b"hello") is None


def test_decoder_message_is_the_decoders_words_in_one_line():
    truncated = cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes()[:200]
    with pytest.raises(tf.errors.InvalidArgumentError) as eager:
        tf.io.decode_image(truncated)
    decode = tf.function(lambda data: tf.io.decode_image(data, channels=3))
    with pytest.raises(tf.errors.InvalidArgumentError) as graph:
        decode(tf.constant(truncated))
    for error in (eager.value, graph.value):
        message = image_formats.decoder_message(error)
        assert "jpeg" in message.lower() and "\n" not in message, message
        assert "{{" not in message and "[Op:" not in message and "Graph execution" not in message, message
        assert not message.rstrip().endswith("name:"), message
