"""Speed and memory of evaluation (CMC/mAP/mINP) and k-reciprocal re-ranking.

Builds structured synthetic features of the Market-1501 and DukeMTMC-reID test
sets' sizes, then times `spreid_tf.metrics.evaluate_features` and
`spreid_tf.rerank.re_ranking` next to the plain reference implementations that
the tests trust (tests/_reference.py: torchreid's eval_market1501 loop and the
published re_ranking), and prints a markdown table. With the numpy backend it
also times `spreid_tf.rerank.evaluate_reranked` (task rerank_eval_streamed: the
re-ranked CMC/mAP without the query x gallery matrix; its results must be
identical to evaluate_rank of re_ranking's matrix).

    python benchmarks/evaluation.py                      # Market, with references
    python benchmarks/evaluation.py --case all --skip_reference
    python benchmarks/evaluation.py --case msmt17 --repeats 1        # MSMT17 size, no references
    python benchmarks/evaluation.py --case msmt17 --dim 6144 --backends ""   # SPReID's embedding, evaluation only

Every measurement runs in its own child process, so that its peak resident
memory (ru_maxrss) is its own: "peak MiB" is that peak, "+MiB" the part above
the resident size once the inputs were loaded. Wall and CPU seconds are the
median over --repeats runs (CPU time counts every thread). The reference
re-ranking on Market size needs about 8.5 GiB and a minute or more.

Synthetic data: each identity has a centre (identities come in look-alike
groups), each camera a small bias, each image noise of varying strength
(10% of images much noisier); features are l2-normalised, 2048-D.
Market: 751 ids, 6 cameras, 3368 queries, 15913 gallery images of which 2793
distractors (pid 0). Duke: 702 query ids, 8 cameras, 2228 queries, 17661
gallery images of 1110 ids (408 distractor identities). MSMT17: 3060 ids, 15
cameras, 11659 queries, 82161 gallery images. --dim sets the dimension (SPReID
w/fg: 6144).

At MSMT17 size the references are not run: the published re-ranking needs at least
16 (q+g)^2 bytes at once (the float32 distance matrix, np.argsort's int64 ranks and
their int32 copy: 131 GiB), torchreid's evaluation 21 q g bytes (distances, argsort
indices, the gathered pids and their comparison: 19 GiB); the script prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
# The references live with the tests (tests/_reference.py), which are not a package.
sys.path.insert(0, str(REPO / "tests"))

CASES = {
    "market": dict(num_ids=751, num_query=3368, num_gallery=15913, num_distractors=2793,
                   distractor_ids=0, num_cams=6),
    "duke": dict(num_ids=702, num_query=2228, num_gallery=17661, num_distractors=0,
                 distractor_ids=408, num_cams=8),
    # MSMT17's test split: 3060 ids, 15 cameras, 11659 queries x 82161 gallery images.
    "msmt17": dict(num_ids=3060, num_query=11659, num_gallery=82161, num_distractors=0,
                   distractor_ids=0, num_cams=15),
    # A smoke test of this script, in seconds.
    "tiny": dict(num_ids=50, num_query=200, num_gallery=900, num_distractors=100,
                 distractor_ids=10, num_cams=4),
}
DIM = 2048


def make_features(num_ids: int, num_query: int, num_gallery: int, num_distractors: int,
                  distractor_ids: int, num_cams: int, seed: int = 0, dim: int = DIM):
    """Structured synthetic features; see the module docstring."""
    rng = np.random.default_rng(seed)
    signal, rho, cam_sigma = 0.42, 0.6, 0.1
    total_ids = num_ids + distractor_ids
    groups = signal * rng.standard_normal((150, dim), dtype=np.float32)
    centres = signal * rng.standard_normal((total_ids + 1, dim), dtype=np.float32)
    centres = (np.float32(np.sqrt(1 - rho)) * centres
               + np.float32(np.sqrt(rho)) * groups[rng.integers(0, 150, total_ids + 1)])
    cam_bias = cam_sigma * rng.standard_normal((num_cams, dim), dtype=np.float32)
    # Queries: every query id once, the rest at random; gallery: every id once
    # (distractor ids included), the rest at random, then pid-0 distractors.
    q_pids = np.concatenate([np.arange(1, num_ids + 1),
                             rng.integers(1, num_ids + 1, num_query - num_ids)])
    num_id_images = num_gallery - num_distractors
    g_pids = np.concatenate([np.arange(1, total_ids + 1),
                             rng.integers(1, total_ids + 1, num_id_images - total_ids),
                             np.zeros(num_distractors, dtype=np.int64)])
    q_cams = rng.integers(0, num_cams, num_query)
    g_cams = rng.integers(0, num_cams, num_gallery)

    def images(pids, cams):
        out = np.empty((len(pids), dim), dtype=np.float32)
        for s in range(0, len(pids), 2048):
            p, c = pids[s:s + 2048], cams[s:s + 2048]
            strength = rng.uniform(0.8, 1.2, (len(p), 1)).astype(np.float32)
            strength[rng.random(len(p)) < 0.1] *= np.float32(1.6)
            x = rng.standard_normal((len(p), dim), dtype=np.float32) * strength
            x += centres[p] + cam_bias[c]
            distractor = p == 0
            x[distractor] += signal * rng.standard_normal((int(distractor.sum()), dim),
                                                          dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[s:s + 2048] = x
        return out

    return images(q_pids, q_cams), images(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


# ------------------------------------------------------------------------ child side


def _plain_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What evaluation scripts usually do: one dense float32 matrix."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d, 0.0))


def _status_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak) of this process, in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries the parent's peak into
    ru_maxrss across fork + exec, VmHWM belongs to this process image only.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child(task: str, data_dir: pathlib.Path, repeats: int) -> dict:
    arrays = np.load(data_dir / "ids.npz")
    qf = np.load(data_dir / "query.npy")
    gf = np.load(data_dir / "gallery.npy")
    ids = (arrays["q_pids"], arrays["g_pids"], arrays["q_cams"], arrays["g_cams"])
    q_pids, g_pids, q_cams, g_cams = ids
    from spreid_tf import metrics, rerank
    import _reference as ref
    if task == "rerank_tf":
        import tensorflow as tf  # imported before timing, as a caller would have

        tf.constant(0.0)
    rss_start = _status_mib("VmRSS")
    walls, cpus, info = [], [], {}
    for i in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        if task == "eval_fast":
            r = metrics.evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams)
            info = {"mAP": r.mAP, "rank1": float(r.cmc[0]), "mINP": r.mINP,
                    "cmc": [float(c) for c in r.cmc], "num_valid": r.num_valid_queries}
        elif task == "eval_reference":
            # Stable argsort: float32 distances of ~16K gallery entries tie
            # exactly (dozens of pairs per query), and torchreid's quicksort
            # orders ties arbitrarily; spreid_tf orders them by gallery index.
            distmat = metrics.pairwise_distance(qf, gf)
            cmc, mAP, mINP, num_valid = ref.ref_eval_market1501(
                distmat, q_pids, g_pids, q_cams, g_cams, sort_kind="stable")
            info = {"mAP": float(mAP), "rank1": float(cmc[0]), "mINP": float(mINP),
                    "cmc": [float(c) for c in cmc], "num_valid": num_valid}
            if i == 0:
                # Untimed: spreid_tf on this very matrix must agree exactly
                # (evaluate_features computes its distances by chunks, whose
                # float32 rounding can differ, which moves near-ties).
                wall_pause, cpu_pause = time.perf_counter(), time.process_time()
                same = metrics.evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
                info["same_matrix"] = {
                    "dmAP": abs(same.mAP - float(mAP)), "dmINP": abs(same.mINP - float(mINP)),
                    "cmc_equal": bool(np.array_equal(
                        np.rint(same.cmc * same.num_valid_queries),
                        np.rint(cmc.astype(np.float64) * same.num_valid_queries)))}
                wall += time.perf_counter() - wall_pause
                cpu += time.process_time() - cpu_pause
            del distmat
        elif task in ("rerank_numpy", "rerank_tf"):
            out = rerank.re_ranking(qf, gf, backend=task.split("_")[1])
        elif task == "rerank_eval_streamed":
            # Re-ranked CMC / mAP without the q x g matrix (re_ranking_blocks).
            r = rerank.evaluate_reranked(qf, gf, q_pids, g_pids, q_cams, g_cams)
            info = {"mAP": r.mAP, "rank1": float(r.cmc[0]), "mINP": r.mINP,
                    "cmc": [float(c) for c in r.cmc], "num_valid": r.num_valid_queries}
        elif task == "rerank_reference":
            out = ref.ref_re_ranking(_plain_distance(qf, gf), _plain_distance(qf, qf),
                                     _plain_distance(gf, gf))
        else:
            raise ValueError(task)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if task in ("rerank_numpy", "rerank_tf", "rerank_reference") and i == 0:
            np.save(data_dir / f"{task}.npy", out)
        if task in ("rerank_numpy", "rerank_tf", "rerank_reference"):
            del out
    return {"task": task, "wall_s": statistics.median(walls), "wall_min_s": min(walls),
            "cpu_s": statistics.median(cpus), "repeats": repeats,
            "peak_mib": _status_mib("VmHWM"),
            "start_mib": rss_start, **info}


# ----------------------------------------------------------------------- parent side


def blas_report() -> str:
    """Which BLAS numpy's matmul calls, and which of its kernels, in one line.

    The distance matmul is nearly all of the evaluation's time, and OpenBLAS picks its
    kernels at load time: on an AVX-512 CPU its SkylakeX kernels run about twice as fast
    as its Haswell (AVX2) ones, and OPENBLAS_CORETYPE in the environment overrides the
    choice (this development machine's environment sets OPENBLAS_CORETYPE=Haswell).
    """
    import ctypes
    import glob

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - numpy builds without the dicts mode: report what we can
        name = "unknown BLAS"
    kernel = "kernel unknown"
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename"):
            if hasattr(lib, symbol):
                get = getattr(lib, symbol)
                get.restype = ctypes.c_char_p
                kernel = f"kernel {get().decode()}"
                break
    forced = os.environ.get("OPENBLAS_CORETYPE")
    flags = ""
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    line = f"numpy {np.__version__}, {name}, {kernel}"
    if forced is not None:
        line += f" (OPENBLAS_CORETYPE={forced} is set)"
    if " avx512f" in flags and "Haswell" in kernel:
        line += ("; this CPU has AVX-512, which OpenBLAS's SkylakeX kernels use at about twice "
                 "the speed: unset OPENBLAS_CORETYPE to let OpenBLAS choose")
    return line



def _run_child(task: str, data_dir: pathlib.Path, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--_task", task, "--_data", str(data_dir),
           "--repeats", str(repeats)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _reranked_quality(data_dir: pathlib.Path, task: str) -> dict:
    from spreid_tf import metrics

    ids = np.load(data_dir / "ids.npz")
    dist = np.load(data_dir / f"{task}.npy", mmap_mode="r")
    r = metrics.evaluate_rank(np.asarray(dist), ids["q_pids"], ids["g_pids"], ids["q_cams"],
                              ids["g_cams"])
    return {"mAP": r.mAP, "rank1": float(r.cmc[0]), "mINP": r.mINP,
            "cmc": [float(c) for c in r.cmc]}


# Cases where the references' dense matrices do not fit a workstation: not run, only sized.
NO_REFERENCE = ("msmt17",)


def published_memory_gib(num_query: int, num_gallery: int) -> dict:
    """Lower bounds on what the reference code holds at once (bytes as in the module docstring)."""
    n = num_query + num_gallery
    return {"rerank_reference_gib": 16 * n ** 2 / 2 ** 30,
            "eval_reference_gib": 21 * num_query * num_gallery / 2 ** 30}


def run_case(name: str, args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"spreid_bench_{name}_") as tmp:
        data_dir = pathlib.Path(tmp)
        t = time.perf_counter()
        qf, gf, q_pids, g_pids, q_cams, g_cams = make_features(**CASES[name], seed=args.seed, dim=args.dim)
        np.save(data_dir / "query.npy", qf)
        np.save(data_dir / "gallery.npy", gf)
        np.savez(data_dir / "ids.npz", q_pids=q_pids, g_pids=g_pids, q_cams=q_cams,
                 g_cams=g_cams)
        del qf, gf
        print(f"[{name}] data ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        skip_reference = args.skip_reference or name in NO_REFERENCE
        tasks = ["eval_fast"] + (["eval_reference"] if not skip_reference else [])
        tasks += [f"rerank_{b}" for b in args.backends.split(",") if b]
        if "numpy" in args.backends.split(",") and not args.skip_streamed_rerank:
            tasks.append("rerank_eval_streamed")
        if not skip_reference and not args.skip_reference_rerank:
            tasks.append("rerank_reference")
        results = {}
        for task in tasks:
            repeats = 1 if task.endswith("reference") else args.repeats
            print(f"[{name}] {task} x{repeats} ...", file=sys.stderr)
            results[task] = _run_child(task, data_dir, repeats)
            if task in ("rerank_numpy", "rerank_tf", "rerank_reference"):
                results[task].update(_reranked_quality(data_dir, task))
        for task, res in results.items():
            note = ""
            if task == "eval_fast" and "eval_reference" in results:
                other = results["eval_reference"]
                # CMC values are counts / num_valid: compare the counts.
                same_cmc = np.array_equal(np.rint(np.array(res["cmc"]) * res["num_valid"]),
                                          np.rint(np.array(other["cmc"]) * other["num_valid"]))
                note = (f"vs reference: dmAP {abs(res['mAP'] - other['mAP']):.1e}, "
                        f"CMC {'equal' if same_cmc else 'DIFFERENT'}")
            if task.startswith("rerank_") and task != "rerank_reference" \
                    and "rerank_reference" in results:
                a = np.load(data_dir / f"{task}.npy", mmap_mode="r")
                b = np.load(data_dir / "rerank_reference.npy", mmap_mode="r")
                diff = np.abs(np.asarray(a) - np.asarray(b))
                note = (f"vs reference: max abs diff {diff.max():.1e}, "
                        f"{np.count_nonzero(diff > 1e-5) / diff.size:.1e} of entries > 1e-5, "
                        f"dmAP {abs(res['mAP'] - results['rerank_reference']['mAP']):.1e}, "
                        f"dR1 {abs(res['rank1'] - results['rerank_reference']['rank1']):.1e}")
            if "same_matrix" in res:
                same = res["same_matrix"]
                note = (f"spreid_tf evaluate_rank on this matrix: dmAP {same['dmAP']:.1e}, "
                        f"dmINP {same['dmINP']:.1e}, CMC "
                        f"{'equal' if same['cmc_equal'] else 'DIFFERENT'}")
            if name in NO_REFERENCE:
                need = published_memory_gib(CASES[name]["num_query"], CASES[name]["num_gallery"])
                note = (f"reference not run: it would hold >= {need['eval_reference_gib']:.0f} GiB"
                        if task.startswith("eval") else
                        f"reference not run: it would hold >= {need['rerank_reference_gib']:.0f} GiB")
            if task == "rerank_eval_streamed" and "rerank_numpy" in results:
                other = results["rerank_numpy"]
                same = (res["mAP"] == other["mAP"] and res["mINP"] == other["mINP"]
                        and res["cmc"] == other["cmc"])
                note = (f"vs evaluate_rank(re_ranking(...)): mAP, mINP, CMC "
                        f"{'identical' if same else 'DIFFERENT'}")
            rows.append({"case": name, "dim": args.dim, **res, "note": note})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| case | dim | task | wall s (median) | wall s (min) | CPU s | peak MiB | +MiB "
             "| mAP | R1 | mINP | agreement |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['dim']} | {r['task']} | {r['wall_s']:.2f} | {r['wall_min_s']:.2f} "
            f"| {r['cpu_s']:.2f} | {r['peak_mib']:.0f} | {r['peak_mib'] - r['start_mib']:.0f} "
            f"| {r['mAP']:.4f} | {r['rank1']:.4f} | {r['mINP']:.4f} | {r['note']} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["market", "duke", "msmt17", "all", "tiny"], default="market",
                        help="all: market and duke")
    parser.add_argument("--dim", type=int, default=DIM, help="feature dimension (SPReID w/fg: 6144)")
    parser.add_argument("--skip_reference", action="store_true",
                        help="time only spreid_tf (the references take minutes)")
    parser.add_argument("--skip_reference_rerank", action="store_true",
                        help="skip only the reference re-ranking (~8.5 GiB on Market)")
    parser.add_argument("--backends", default="numpy",
                        help="comma-separated re-ranking backends: numpy,tf")
    parser.add_argument("--skip_streamed_rerank", action="store_true",
                        help="skip rerank_eval_streamed (rerank.evaluate_reranked: the re-ranked "
                             "CMC / mAP without the query x gallery matrix)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per fast measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--_task", help=argparse.SUPPRESS)
    parser.add_argument("--_data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._task:
        print(json.dumps(_child(args._task, pathlib.Path(args._data), args.repeats)))
        return
    blas = blas_report()
    print(f"BLAS: {blas}", file=sys.stderr)
    rows = []
    for name in (["market", "duke"] if args.case == "all" else [args.case]):
        rows += [dict(row, blas=blas) for row in run_case(name, args)]
    print(f"BLAS: {blas}")
    print(markdown(rows))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
