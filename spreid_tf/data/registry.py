"""The benchmark registry: one DatasetInfo per converted dataset.

Each reader module (`spreid_tf/data/readers/<name>.py`) describes its benchmark in
`INFO`; this module imports the readers and collects their INFOs, so `DATASETS` is
complete once `spreid_tf.data.registry` is imported. Readers import neither this
module nor the synthetic miniatures (`spreid_tf.data.synthetic.MINIATURES` maps the
same names to their writers).

    from spreid_tf.data.registry import DATASETS
    result = DATASETS["market1501"].read(Path("/data/market1501"))
"""

from __future__ import annotations

from spreid_tf.data.dataset_info import DatasetInfo
from spreid_tf.data.readers import (cuhk01, cuhk02, cuhk03, cuhksysu, dukemtmcreid, lip, market1501, msmt17, pes3d,
                                    prid2011, shinpuhkan, viper)

__all__ = ["DATASETS", "MERGED_DATASETS", "DatasetInfo", "get"]

# The ten benchmarks the paper merges for training (Sec. 4.1), in this order.
MERGED_DATASETS: tuple[str, ...] = (
    "market1501", "dukemtmcreid", "cuhk03", "cuhk01", "cuhk02", "viper",
    "prid2011", "3dpes", "cuhksysu", "shinpuhkan",
)

_READERS = (market1501, dukemtmcreid, msmt17, cuhksysu, lip, cuhk03, cuhk01, cuhk02, viper, prid2011,
            pes3d,  # "3dpes"
            shinpuhkan)

DATASETS: dict[str, DatasetInfo] = {reader.INFO.name: reader.INFO for reader in _READERS}


def get(name: str) -> DatasetInfo:
    """The DatasetInfo named `name`; a KeyError lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
