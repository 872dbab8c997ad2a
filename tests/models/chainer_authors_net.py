"""The SPReID authors' networks in Chainer, for tests/models/test_chainer_parity.py (run in a throwaway venv).

Needs Chainer 7.8.1, numpy<2 and h5py, nothing of spreid_tf. Built from the structure the
authors published (modelx.py and main.py of emrahbasaran/SPReID): InceptionV3(dilated=True)
+ Classifier(20) for the parser, saved with `chainer.serializers.save_hdf5` as their
`LIP_iter_30000.chainermodel`; and their ImageNet initialisation format, one HDF5 file per
layer (`weights` HWIO, `beta`, `gamma`, `mean`, `var`, `padding`, `strides`), loaded as their
ConvBN does (`weights.transpose(3, 2, 0, 1)`) into the plain and the dilated InceptionV3.

Weights are Chainer's default initialisation with random batch-norm scales and shifts; the
batch-norm statistics are those of a calibration batch (mean and second moment, so that
activations stay of order one through 94 layers), then perturbed at random. Inputs are preprocessed as the authors' data
loader does: BGR, minus the ImageNet channel means, no scaling.

    python chainer_authors_net.py OUT_DIR --sizes=77x88,91x81 --seed=0

writes OUT_DIR/parsing.chainermodel, OUT_DIR/dump/<layer>.h5 and, per size HxW,
images_HxW.npy (uint8 RGB, NHWC), probabilities_HxW.npy (softmax of the logits over the 20
labels at the logits' grid, NHWC: what the authors' re-id model pools with),
plain_HxW.npy and dilated_HxW.npy (the backbones loaded from the dump, NHWC features).
"""

import argparse
import os

import chainer
import chainer.functions as F
import chainer.links as L
import h5py
import numpy as np

CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


class ConvBN(chainer.Chain):
    """Convolution without bias, batch norm, ReLU; optionally a stride-1 average pooling first."""

    def __init__(self, cin, cout, ksize, stride=1, pad=0, dilate=1, name=None, pool=None):
        super().__init__()
        with self.init_scope():
            self.conv = L.Convolution2D(cin, cout, ksize, stride, pad, nobias=True, dilate=dilate)
            self.bn = L.BatchNormalization(cout)
        self.dump_name = name
        self.pool = pool  # (ksize, pad)

    def forward(self, x):
        if self.pool:
            x = F.average_pooling_2d(x, self.pool[0], 1, self.pool[1])
        return F.relu(self.bn(self.conv(x)))


class Sequential(chainer.ChainList):
    def forward(self, x):
        for link in self:
            x = link(x)
        return x


class Inception(chainer.ChainList):
    """Branches concatenated along channels; an optional max pooling branch last."""

    def __init__(self, *links, max_pool=None):
        super().__init__(*links)
        self.max_pool = max_pool  # (ksize, stride, pad), cover_all=False

    def forward(self, x):
        ys = [link(x) for link in self]
        if self.max_pool:
            k, s, p = self.max_pool
            ys.append(F.max_pooling_2d(x, k, s, p, cover_all=False))
        return F.concat(ys, axis=1)


def _block35(cin, pool_channels, p):
    return Inception(
        ConvBN(cin, 64, 1, name=f"{p}_conv"),
        Sequential(ConvBN(cin, 48, 1, name=f"{p}_tower_conv"), ConvBN(48, 64, 5, pad=2, name=f"{p}_tower_conv_1")),
        Sequential(ConvBN(cin, 64, 1, name=f"{p}_tower_1_conv"), ConvBN(64, 96, 3, pad=1, name=f"{p}_tower_1_conv_1"),
                   ConvBN(96, 96, 3, pad=1, name=f"{p}_tower_1_conv_2")),
        ConvBN(cin, pool_channels, 1, name=f"{p}_tower_2_conv", pool=(3, 1)))


def _block17(c, p):
    return Inception(
        ConvBN(768, 192, 1, name=f"{p}_conv"),
        Sequential(ConvBN(768, c, 1, name=f"{p}_tower_conv"),
                   ConvBN(c, c, (1, 7), pad=(0, 3), name=f"{p}_tower_conv_1"),
                   ConvBN(c, 192, (7, 1), pad=(3, 0), name=f"{p}_tower_conv_2")),
        Sequential(ConvBN(768, c, 1, name=f"{p}_tower_1_conv"),
                   ConvBN(c, c, (7, 1), pad=(3, 0), name=f"{p}_tower_1_conv_1"),
                   ConvBN(c, c, (1, 7), pad=(0, 3), name=f"{p}_tower_1_conv_2"),
                   ConvBN(c, c, (7, 1), pad=(3, 0), name=f"{p}_tower_1_conv_3"),
                   ConvBN(c, 192, (1, 7), pad=(0, 3), name=f"{p}_tower_1_conv_4")),
        ConvBN(768, 192, 1, name=f"{p}_tower_2_conv", pool=(3, 1)))


def _block8(cin, p, dilated):
    d = 2 if dilated else 1

    def pair(name_a, name_b):
        return Inception(ConvBN(384, 384, (1, 3), pad=(0, d), dilate=(1, d), name=name_a),
                         ConvBN(384, 384, (3, 1), pad=(d, 0), dilate=(d, 1), name=name_b))

    return Inception(
        ConvBN(cin, 320, 1, name=f"{p}_conv"),
        Sequential(ConvBN(cin, 384, 1, name=f"{p}_tower_conv"),
                   pair(f"{p}_tower_mixed_conv", f"{p}_tower_mixed_conv_1")),
        Sequential(ConvBN(cin, 448, 1, name=f"{p}_tower_1_conv"),
                   ConvBN(448, 384, 3, pad=d, dilate=d, name=f"{p}_tower_1_conv_1"),
                   pair(f"{p}_tower_1_mixed_conv", f"{p}_tower_1_mixed_conv_1")),
        ConvBN(cin, 192, 1, name=f"{p}_tower_2_conv", pool=(5, 2) if dilated else (3, 1)))


class InceptionV3(chainer.Chain):
    def __init__(self, dilated):
        super().__init__()
        s = 1 if dilated else 2
        r = 1 if dilated else 0
        with self.init_scope():
            self.convolution = chainer.ChainList(
                ConvBN(3, 32, 3, 2, name="conv"), ConvBN(32, 32, 3, name="conv_1"),
                ConvBN(32, 64, 3, pad=1, name="conv_2"), ConvBN(64, 80, 1, name="conv_3"),
                ConvBN(80, 192, 3, name="conv_4"))
            self.inception = chainer.ChainList(
                Sequential(_block35(192, 32, "mixed"), _block35(256, 64, "mixed_1"), _block35(288, 64, "mixed_2")),
                Sequential(*[_block17(c, f"mixed_{i}") for i, c in zip(range(4, 8), (128, 160, 160, 192))]),
                Sequential(_block8(1280, "mixed_9", dilated), _block8(2048, "mixed_10", dilated)))
            self.grid_reduction = chainer.ChainList(
                Inception(ConvBN(288, 384, 3, 2, name="mixed_3_conv"),
                          Sequential(ConvBN(288, 64, 1, name="mixed_3_tower_conv"),
                                     ConvBN(64, 96, 3, pad=1, name="mixed_3_tower_conv_1"),
                                     ConvBN(96, 96, 3, 2, name="mixed_3_tower_conv_2")),
                          max_pool=(3, 2, 0)),
                Inception(Sequential(ConvBN(768, 192, 1, name="mixed_8_tower_conv"),
                                     ConvBN(192, 320, 3, s, r, name="mixed_8_tower_conv_1")),
                          Sequential(ConvBN(768, 192, 1, name="mixed_8_tower_1_conv"),
                                     ConvBN(192, 192, (1, 7), pad=(0, 3), name="mixed_8_tower_1_conv_1"),
                                     ConvBN(192, 192, (7, 1), pad=(3, 0), name="mixed_8_tower_1_conv_2"),
                                     ConvBN(192, 192, 3, s, r, name="mixed_8_tower_1_conv_3")),
                          max_pool=(3, s, r)))

    def forward(self, x):
        c = self.convolution
        x = c[2](c[1](c[0](x)))
        x = F.max_pooling_2d(x, 3, 2)  # Chainer's default cover_all=True, as in the authors' code
        x = c[4](c[3](x))
        x = F.max_pooling_2d(x, 3, 2)
        x = self.inception[0](x)
        x = self.grid_reduction[0](x)
        x = self.inception[1](x)
        x = self.grid_reduction[1](x)
        return self.inception[2](x)


class Conv(chainer.Chain):
    def __init__(self, cin, cout):
        super().__init__()
        with self.init_scope():
            self.conv = L.Convolution2D(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class Classifier(chainer.Chain):
    def __init__(self, labels):
        super().__init__()
        with self.init_scope():
            self.ASPP = chainer.ChainList(
                ConvBN(2048, 512, 1), ConvBN(2048, 512, 1),
                *[ConvBN(2048, 256, 3, pad=r, dilate=r) for r in (3, 6, 9, 12)],
                ConvBN(2048, 1024, 1))
            self.classifier = chainer.ChainList(Conv(1024, labels))

    def forward(self, x):
        h, w = x.shape[2:]
        pooled = self.ASPP[0](F.average_pooling_2d(x, (h, w)))
        ys = [F.tile(pooled, (1, 1, h, w))] + [self.ASPP[i](x) for i in range(1, 6)]
        return self.classifier[0](self.ASPP[6](F.concat(ys, axis=1)))


class ParsingNetwork(chainer.Chain):
    """The link tree of the authors' InceptionV3Classifier: predictor, classifiers/0."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.predictor = InceptionV3(dilated=True)
            self.classifiers = chainer.ChainList(Classifier(20))

    def forward(self, x):
        return self.classifiers[0](self.predictor(x))


def conv_bns(link):
    return [l for l in link.links() if isinstance(l, ConvBN)]


def randomise(network, forward, calibration, rng):
    """Random batch-norm scales and shifts; statistics of a calibration batch, then perturbed."""
    for unit in conv_bns(network):
        c = unit.bn.gamma.shape[0]
        unit.bn.gamma.array[...] = rng.uniform(0.5, 1.5, c)
        unit.bn.beta.array[...] = rng.normal(0.0, 0.2, c)
        unit.bn.decay = 0.0  # a training-mode pass sets the statistics to the batch's
    with chainer.using_config("train", True), chainer.no_backprop_mode():
        forward(calibration)
    for unit in conv_bns(network):
        # The second moment, not the variance: a channel nearly constant over the calibration
        # batch (the ASPP's image-level branch, deep layers' few positions) must not blow up
        # what other images give it.
        c = unit.bn.gamma.shape[0]
        unit.bn.avg_var[...] = (unit.bn.avg_var + unit.bn.avg_mean ** 2) * rng.uniform(0.7, 1.4, c)
        unit.bn.avg_mean[...] += (rng.normal(0.0, 0.1, c) * np.sqrt(unit.bn.avg_var)).astype(np.float32)


def preprocess(images):
    """uint8 RGB NHWC -> the authors' input: BGR minus the channel means, NCHW float32."""
    x = images[..., ::-1].astype(np.float32) - CAFFE_BGR_MEAN
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def write_dump(network, folder):
    os.makedirs(folder, exist_ok=True)
    for unit in conv_bns(network):
        with h5py.File(os.path.join(folder, unit.dump_name + ".h5"), "w") as f:
            f["weights"] = unit.conv.W.array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            f["beta"] = unit.bn.beta.array
            f["gamma"] = unit.bn.gamma.array
            f["mean"] = unit.bn.avg_mean
            f["var"] = unit.bn.avg_var
            f["padding"] = np.array(unit.conv.pad, np.int64)
            f["strides"] = np.array((1,) + tuple(unit.conv.stride) + (1,), np.int64)


def load_dump(network, folder):
    """As the authors' ConvBN does with init_weights."""
    for unit in conv_bns(network):
        with h5py.File(os.path.join(folder, unit.dump_name + ".h5"), "r") as f:
            unit.conv.W.array[...] = np.array(f["weights"]).transpose([3, 2, 0, 1])
            unit.bn.beta.array[...] = np.array(f["beta"])
            unit.bn.gamma.array[...] = np.array(f["gamma"])
            unit.bn.avg_mean[...] = np.array(f["mean"])
            unit.bn.avg_var[...] = np.array(f["var"])


def infer(forward, x):
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        return forward(x).array


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--sizes", default="77x88,91x81")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rng = np.random.default_rng(args.seed)
    np.random.seed(args.seed)  # Chainer's default initialisers draw from numpy's global generator
    os.makedirs(args.out, exist_ok=True)
    calibration = preprocess(rng.integers(0, 256, (4, 128, 112, 3), dtype=np.uint8))
    images = {size: rng.integers(0, 256, (2,) + size + (3,), dtype=np.uint8) for size in sizes}

    parsing = ParsingNetwork()
    randomise(parsing, parsing, calibration, rng)
    classifier = parsing.classifiers[0].classifier[0].conv
    classifier.b.array[...] = rng.normal(0.0, 0.5, classifier.b.shape)
    chainer.serializers.save_hdf5(os.path.join(args.out, "parsing.chainermodel"), parsing)

    source = InceptionV3(dilated=False)
    randomise(source, source, calibration, rng)
    write_dump(source, os.path.join(args.out, "dump"))
    plain, dilated = InceptionV3(dilated=False), InceptionV3(dilated=True)
    load_dump(plain, os.path.join(args.out, "dump"))
    load_dump(dilated, os.path.join(args.out, "dump"))

    for size, batch in images.items():
        tag = f"{size[0]}x{size[1]}"
        x = preprocess(batch)
        np.save(os.path.join(args.out, f"images_{tag}.npy"), batch)
        probabilities = infer(lambda v: F.softmax(parsing(v), axis=1), x)
        np.save(os.path.join(args.out, f"probabilities_{tag}.npy"), probabilities.transpose(0, 2, 3, 1))
        np.save(os.path.join(args.out, f"plain_{tag}.npy"), infer(plain, x).transpose(0, 2, 3, 1))
        np.save(os.path.join(args.out, f"dilated_{tag}.npy"), infer(dilated, x).transpose(0, 2, 3, 1))


if __name__ == "__main__":
    main()
