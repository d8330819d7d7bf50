"""Paper 003 (``wsi-rna``, ``rnaseq``): gene tokens, stain scoring, the ``stain_patches`` stage, the RNA encoder
and the multimodal model's training step.

Data: the TCGA expression table's genes (``/work/shared/data/tcga-rnaseq/rnaseq.tsv``, 1544) and the STRING
v12 edges (``/work/shared/data/ppi/string_v12_edges.csv.gz``); when either is absent, the synthetic gene space
and PPI of :mod:`gliotype.cohort.synth.rnaseq` (each row's note says which).

* ``ppi-louvain:string``: :func:`~gliotype.rna.tokens.ppi_tokens` (graph of the table's genes, Louvain, merge
  to 7 tokens, modularity) on edges read beforehand, untimed; the file read
  (:func:`~gliotype.cohort.tables.read_ppi`) is its own row, ``ppi-read``. ``ppi-louvain:string-all``: the same
  over every gene of STRING (~17k genes, ~175k edges; ~10 s a run, so not a quick case).
* ``stain-score:brown``: :func:`~gliotype.prepare.stain.brown_fraction` on a stack of the 256 patches of a
  4096 x 4096 IHC image (``skimage.data.immunohistochemistry()`` tiled 8 x 8; the patch cut untimed), and
  :func:`~gliotype.prepare.stain.select_patches` (cut + score + threshold) on the image. ``stain-score:tissue``:
  :func:`~gliotype.prepare.stain.tissue_fraction` and ``select_patches(score="tissue")`` on a 4096 x 4096 H&E
  image (level 0 of ``bench_tiles``' synthetic slide).
* ``stain-patches:8k-he`` / ``:8k-ihc``: the ``stain_patches`` stage through ``run_stage`` (new cache each
  run), per slide, on an 8192 x 8192 JPEG pyramid (``bench_tiles.build_slide``): its H&E slide with
  ``score="tissue"``, and the same writer rendering the tiled IHC image with ``score="brown"`` (the paper's).
  The slide is read tile by tile at level 0 (1024 patches of 256 px), every patch scored.
* ``rna-load:tcga`` / ``rna-load:200x60k``: :func:`~gliotype.cohort.tables.read_rnaseq` then
  :func:`gliotype.methods.rnaseq.per_patient` (what ``rnaseq``'s ``prepare`` does), samples/s; on the TCGA
  table, and on a synthetic 200 samples x 60,000 genes TSV (the authors' gene count), written untimed.
* ``rna-encoder-train``: one step of :class:`~gliotype.nn.rna.RNAEncoder` pretraining, batch 32 (16 lineages
  x 2 samples): mask drawn, masked-token reconstruction + lineage InfoNCE (tau 0.005), backward, AdamW (1e-4,
  weight decay 0.02); tokens of the table's genes (7 PPI tokens + the remainder), dim 128, heads 8, depth 1.
* ``wsi-rna-train:64px`` / ``:256px``: one :class:`~gliotype.nn.image_rna.MultimodalModel` step as
  ``wsi-rna``'s ``_train`` takes it (batch flip/rotation, contrastive + matching loss, zero_grad, backward,
  AdamW): 16 RNA rows, 16 lineages x 2 patches, the RNA encoder above, the ``PatchEncoder`` defaults (embed
  192, depth 4, heads 3) at ``image_size`` 256 and 64. ``wsi-rna-embed:256px``: ``embed_patches`` in eval
  mode, batches of 64 uint8 patches converted to float as ``wsi-rna`` does.
* ``wsi-vit-b16-train:256px``: the authors' patch encoder size (``PatchEncoderConfig(embed=768, depth=12,
  heads=12, projection=256)``), batch 8 (4 lineages x 2), batch-hard triplet (margin 1e-4), backward, AdamW.

Inputs of the training steps are random (the cost does not depend on the values), made once, untimed.
Threads: 1 (``torch.set_num_threads(1)``) except ``wsi-vit-b16-train``, 2 as the authors' figure.

Targets (``../shared/PERFORMANCE.md``, the authors' code on 2 cores): RNA encoder step, batch 32, 2,487
samples/s and 0.37 GB, target >= 2,500 samples/s; RNA data loading 31 samples/s per worker (a 60k-gene text
file re-read per sample), target >= 50x; WSI ViT-B/16 at 256 px, batch 8, forward + backward, 1.36 images/s
and 3.3 GB, target >= 1x. Each of those rows' notes gives its ratio. No figure for PPI clustering or patch
scoring.
"""

from __future__ import annotations

import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from _harness import Case, Context, Row, Target, make_row, measure
from bench_rnaseq import DATA, PPI

IMAGE, PATCH, N_TOKENS = 4096, 256, 7
LINEAGES, PER_LINEAGE = 16, 2
# the authors' figures (PERFORMANCE.md, 2 cores): RNA step samples/s and GB; loading samples/s per worker;
# ViT-B/16 256 px batch 8 images/s and GB
AUTHORS_RNA, AUTHORS_LOAD, AUTHORS_VIT = (2487, 0.37), 31, (1.36, 3.3)
CASES = [
    Case("ppi-louvain", "string"),
    Case("ppi-louvain", "string-all", quick=False),
    Case("stain-score", "brown"),
    Case("stain-score", "tissue"),
    Case("stain-patches", "8k-he", quick=False, params={"score": "tissue"}),
    Case("stain-patches", "8k-ihc", quick=False, params={"score": "brown"}),
    Case("rna-load", "tcga"),
    Case("rna-load", "200x60k", quick=False, target=Target(f">= {50 * AUTHORS_LOAD:,} samples/s (50x)",
                                                           (("throughput", ">=", 50.0 * AUTHORS_LOAD),)),
         params={"samples": 200, "genes": 60000}),
    Case("rna-encoder-train", "b32", target=Target(">= 2,500 samples/s", (("throughput", ">=", 2500.0),))),
    Case("wsi-rna-train", "64px", params={"side": 64}),
    Case("wsi-rna-train", "256px", quick=False, params={"side": 256}),
    Case("wsi-rna-embed", "256px", params={"side": 256}),
    Case("wsi-vit-b16-train", "256px b8", quick=False,
         target=Target(f">= {AUTHORS_VIT[0]} images/s (1x)", (("throughput", ">=", AUTHORS_VIT[0]),))),
]


def run(case: Case, ctx: Context) -> list[Row]:
    return {"ppi-louvain": ppi_rows, "stain-score": stain_rows, "stain-patches": stage_rows,
            "rna-load": load_rows, "rna-encoder-train": rna_rows, "wsi-rna-train": wsi_rna_rows,
            "wsi-rna-embed": wsi_rna_rows, "wsi-vit-b16-train": vit_rows}[case.name](case, ctx)


# --- genes and tokens ---------------------------------------------------------------------------


def gene_space() -> tuple[list[str], object, str]:
    """(the table's genes, the PPI edges as read_ppi gives them, where they came from)."""
    import pandas as pd

    from gliotype.cohort.tables import read_ppi

    if (DATA / "rnaseq.tsv").is_file() and PPI.is_file():
        genes = list(pd.read_csv(DATA / "rnaseq.tsv", sep="\t", nrows=0, index_col=0).columns)
        return genes, read_ppi(PPI), f"TCGA table's genes, {PPI.name}"
    from gliotype.cohort.synth.rnaseq import make_gene_space, ppi_table

    space = make_gene_space(0)
    return list(space.genes), ppi_table(space, 0), f"SYNTHETIC gene space and PPI ({DATA} or {PPI} absent)"


def paper_tokens():
    """The table's genes and their 7 PPI tokens (+ remainder), and the source; built untimed."""
    from gliotype.rna.tokens import ppi_tokens

    genes, edges, source = gene_space()
    return genes, ppi_tokens(genes, edges, N_TOKENS), source


def ppi_rows(case: Case, ctx: Context) -> list[Row]:
    from gliotype.cohort.tables import read_ppi
    from gliotype.rna.tokens import ppi_tokens

    genes, edges, source = gene_space()
    rows = []
    if case.size == "string-all":
        genes = sorted(set(edges.iloc[:, 0].dropna()) | set(edges.iloc[:, 1].dropna()))
        source = source.replace("TCGA table's genes", "every gene of STRING (empty symbols dropped)")
    elif PPI.is_file() and "SYNTHETIC" not in source:
        times = measure(lambda: read_ppi(PPI), ctx.repeats(5, quick=1))
        rows.append(make_row(case, times, per="file", items=len(edges), unit="edges/s", bench="ppi-read",
                             note=f"read_ppi of {PPI.name} ({PPI.stat().st_size / 1e6:.1f} MB gzip CSV, "
                                  f"{len(edges):,} edges)"))
    tokens = ppi_tokens(genes, edges, N_TOKENS)
    times = measure(lambda: ppi_tokens(genes, edges, N_TOKENS), ctx.repeats(3 if case.size == "string-all" else 5))
    r = tokens.report
    note = (f"{source}; {r['genes']:,} genes, graph {r['in_ppi'] - r['isolated']:,} nodes {r['edges']:,} edges, "
            f"{r['communities']} Louvain communities -> {r['tokens']} tokens "
            f"(sizes {', '.join(map(str, tokens.sizes))}), modularity {r['modularity']}; edges read beforehand, untimed"
            + (" (ppi-read row)" if rows else ""))
    rows.append(make_row(case, times, per="grouping", items=len(genes), unit="genes/s",
                         size=f"{case.size} ({len(genes):,} genes)", note=note))
    return rows


# --- stain scores and the stain_patches stage ---------------------------------------------------


@lru_cache(maxsize=1)
def ihc_base():
    """``skimage.data.immunohistochemistry()``, (512, 512, 3) uint8."""
    from skimage import data

    return data.immunohistochemistry()


def render_ihc(level: int, y0: int, x0: int, size: int = 256):
    """One block of an IHC slide: the tiled IHC image, nearest-sampled at ``level`` (``bench_tiles.render``'s form)."""
    import numpy as np

    base, scale = ihc_base(), 2 ** level
    rows = (np.arange(y0, y0 + size) * scale) % base.shape[0]
    cols = (np.arange(x0, x0 + size) * scale) % base.shape[1]
    return base[rows][:, cols]


def ihc_image(side: int = IMAGE):
    import numpy as np

    base = ihc_base()
    return np.ascontiguousarray(np.tile(base, (side // base.shape[0], side // base.shape[1], 1)))


def he_image(side: int = IMAGE):
    """Level 0 of ``bench_tiles``' synthetic H&E slide, ``side`` x ``side``."""
    import numpy as np

    from bench_tiles import render

    rows = [np.concatenate([render(0, y, x) for x in range(0, side, 256)], axis=1) for y in range(0, side, 256)]
    return np.concatenate(rows, axis=0)


def stain_rows(case: Case, ctx: Context) -> list[Row]:
    from gliotype.prepare.stain import brown_fraction, patch_grid, select_patches, tissue_fraction

    score = case.size
    image = ihc_image() if score == "brown" else he_image()
    kind = "IHC (skimage immunohistochemistry tiled 8x8)" if score == "brown" else "H&E (bench_tiles' slide, level 0)"
    n = (IMAGE // PATCH) ** 2
    runs = ctx.repeats(5, quick=1)
    rows = []
    if score == "brown":
        patches, _ = patch_grid(image, PATCH)
        scores = brown_fraction(patches)
        times = measure(lambda: brown_fraction(patches), runs)
        rows.append(make_row(case, times, per="patch", per_run=n, items=n, unit="patches/s",
                             size=f"brown: stack of {n}", note=f"brown_fraction on ({n}, {PATCH}, {PATCH}, 3) uint8 "
                             f"cut untimed from a {IMAGE}^2 {kind}; {(scores > 0.2).mean():.0%} above 20%"))
    else:
        scores = tissue_fraction(image, PATCH)
        times = measure(lambda: tissue_fraction(image, PATCH), runs)
        rows.append(make_row(case, times, per="patch", per_run=n, items=n, unit="patches/s",
                             size=f"tissue: {IMAGE}^2 image", note=f"tissue_fraction (mask of the whole image, then "
                             f"per patch) on a {IMAGE}^2 {kind}; {(scores > 0.2).mean():.0%} above 20%"))
    times = measure(lambda: select_patches(image, PATCH, score), runs)
    rows.append(make_row(case, times, per="patch", per_run=n, items=n, unit="patches/s", bench="stain-select",
                         size=f"{score}: {IMAGE}^2 image",
                         note=f"select_patches(score={score!r}): cut {n} patches of {PATCH} + score + threshold 0.2; "
                              f"{kind}"))
    return rows


def ihc_slide_fixture(work: Path) -> Path:
    """An 8k IHC pyramid written by ``bench_tiles.build_slide`` with :func:`render_ihc` (separate process)."""
    import bench_tiles

    path = work / f"bench-slide-ihc-{bench_tiles.SIDE}-q{bench_tiles.QUALITY}.tif"
    if not path.is_file():
        tmp = path.with_suffix(".tmp.tif")
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench_tiles, bench_wsi_rna; "
                "bench_tiles.render = bench_wsi_rna.render_ihc; bench_tiles.build_slide(sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp)], check=True)
        tmp.rename(path)
    return path


def one_slide_cohort(work: Path, slide: Path, name: str) -> Path:
    """A one-patient cohort folder whose histology is ``slide`` (a symbolic link)."""
    root = work / f"stain-cohort-{name}"
    hist = root / "P001" / "histology"
    if not (hist / slide.name).exists():
        hist.mkdir(parents=True, exist_ok=True)
        (hist / slide.name).symlink_to(slide.resolve())
        (root / "labels.csv").write_text("patient_id\nP001\n")
    return root


def stage_rows(case: Case, ctx: Context) -> list[Row]:
    import statistics
    import tempfile

    import numpy as np

    from bench_tiles import slide_fixture
    from gliotype.cohort import Cohort
    from gliotype.prepare import load_prepared, run_stage
    from gliotype.prepare.stain_patches import StainPatchesConfig

    score = case.params["score"]
    slide = slide_fixture(ctx.work) if score == "tissue" else ihc_slide_fixture(ctx.work)
    cohort = Cohort.from_folder(one_slide_cohort(ctx.work, slide, case.size))
    config = StainPatchesConfig(score=score)
    caches = tempfile.TemporaryDirectory(dir=ctx.work)
    last = {}

    def prepare(cache: Path) -> None:
        result = run_stage("stain_patches", cohort, ["P001"], config=config, cache_dir=cache)
        if result.failed or result.built != 1:
            raise RuntimeError(f"stain_patches built {result.built} of 1 slide: {result.failed}")
        last["path"] = result.done["P001"]

    with caches:
        times = measure(prepare, ctx.repeats(3, quick=1), setup=lambda: Path(tempfile.mkdtemp(dir=caches.name)))
        arrays, meta = load_prepared(last["path"])
        kept = f"{len(arrays['patches'])} stored (max_patches_per_file {config.max_patches_per_file}) of " \
               f"{int(np.sum(meta['n_scored']))} scored, mean stored score {arrays['scores'].mean():.2f}"
    scored = int(np.sum(meta["n_scored"]))
    note = (f"{scored / statistics.median(times):.0f} patches scored/s; run_stage, 1 worker, new cache each run; "
            f"{slide.stat().st_size / 1e6:.0f} MB 8192^2 JPEG pyramid, "
            f"score={score!r}, {config.size} px at level 0, tile by tile; {kept}")
    return [make_row(case, times, per="slide", items=1, unit="slides/s", note=note)]


# --- RNA loading --------------------------------------------------------------------------------


def wide_table_fixture(work: Path, samples: int, genes: int) -> Path:
    """A samples x genes TSV like rnaseq.tsv (``patient_id`` first), random values, written by a separate process."""
    path = work / f"bench-rnaseq-{samples}x{genes}.tsv"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        code = ("import sys, numpy as np; n, g = int(sys.argv[2]), int(sys.argv[3]); "
                "x = np.round(np.random.default_rng(0).gamma(1.0, 50.0, (n, g)), 3); "
                "f = open(sys.argv[1], 'w'); f.write('patient_id\\t' + '\\t'.join(f'G{i}' for i in range(g)) + '\\n'); "
                "[f.write(f'P{i:04d}\\t' + '\\t'.join(map(str, row)) + '\\n') for i, row in enumerate(x.tolist())]; "
                "f.close()")
        subprocess.run([sys.executable, "-c", code, str(tmp), str(samples), str(genes)], check=True)
        tmp.rename(path)
    return path


def load_rows(case: Case, ctx: Context) -> list[Row]:
    from gliotype.cohort.tables import read_rnaseq
    from gliotype.methods.rnaseq import per_patient

    if case.size == "tcga":
        path = DATA / "rnaseq.tsv"
        if not path.is_file():
            return [Row(case.name, case.size, note=f"skipped: {path} absent")]
    else:
        path = wide_table_fixture(ctx.work, case.params["samples"], case.params["genes"])
    table = read_rnaseq(path)
    n, g = len(table), table.shape[1] - 1
    times = measure(lambda: per_patient(read_rnaseq(path)), ctx.repeats(3, quick=1))
    row = make_row(case, times, per="sample", per_run=n, items=n, unit="samples/s", size=f"{case.size} ({n}x{g:,})")
    ratio = row.throughput / AUTHORS_LOAD
    row.note = (f"read_rnaseq + per_patient of a {path.stat().st_size / 1e6:.0f} MB TSV "
                f"({'TCGA' if case.size == 'tcga' else 'synthetic, written untimed'}); {ratio:.2f}x the authors' "
                f"{AUTHORS_LOAD} samples/s per worker (60k genes{'; fewer genes here' if g < 60000 else ''})")
    return [row]


# --- training steps -----------------------------------------------------------------------------


def rna_encoder(tokens, genes):
    from gliotype.nn.rna import RNAEncoder

    return RNAEncoder.from_tokens(tokens, genes, dim=128, heads=8, depth=1)


def rna_rows(case: Case, ctx: Context) -> list[Row]:
    import torch

    from gliotype.losses.lineage import lineage_infonce

    torch.set_num_threads(1)
    torch.manual_seed(0)
    genes, tokens, source = paper_tokens()
    model = rna_encoder(tokens, genes).train()
    batch = LINEAGES * PER_LINEAGE
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, len(genes), generator=gen)
    ids = torch.arange(LINEAGES).repeat_interleave(PER_LINEAGE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.02)

    def step() -> None:
        loss, cls = model.reconstruction_loss(x, model.sample_mask(batch, gen))
        loss = loss + lineage_infonce(model.project(cls), ids, model.config.tau)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    steps = 20 if ctx.quick else 100
    times = measure(lambda: [step() for _ in range(steps)], ctx.repeats(5, quick=2))
    row = make_row(case, times, per="step", per_run=steps, items=steps * batch, unit="samples/s")
    params = sum(p.numel() for p in model.parameters())
    row.note = (f"{steps} steps per run; {len(tokens.sizes)} tokens (sizes {', '.join(map(str, tokens.sizes))}) of "
                f"{len(genes)} genes ({source}), dim 128, heads 8, depth 1, {params / 1e6:.2f} M params; "
                f"{LINEAGES} lineages x {PER_LINEAGE}; {row.throughput / AUTHORS_RNA[0]:.2f}x the authors' "
                f"{AUTHORS_RNA[0]:,} samples/s ({AUTHORS_RNA[1]} GB, 2 cores); 1 torch thread")
    return [row]


def wsi_rna_rows(case: Case, ctx: Context) -> list[Row]:
    import numpy as np
    import torch

    from gliotype.methods.wsi_rna import augment
    from gliotype.nn.image_rna import MultimodalConfig, MultimodalModel
    from gliotype.nn.patch_encoder import PatchEncoder, PatchEncoderConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    side = case.params["side"]
    genes, tokens, source = paper_tokens()
    patch = PatchEncoder(PatchEncoderConfig(image_size=side))
    model = MultimodalModel(rna_encoder(tokens, genes), patch, MultimodalConfig())
    gen = torch.Generator().manual_seed(0)
    arch = (f"PatchEncoder embed {patch.config.embed}, depth {patch.config.depth}, heads {patch.config.heads}, "
            f"{(side // 16) ** 2} sub-patches; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params; "
            f"RNA: {len(tokens.sizes)} tokens of {len(genes)} genes ({source})")
    if case.name == "wsi-rna-embed":
        n, chunk = 256, 64
        patches = np.random.default_rng(0).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        model.eval()

        @torch.no_grad()
        def embed() -> None:
            for i in range(0, n, chunk):
                x = torch.from_numpy(patches[i:i + chunk]).permute(0, 3, 1, 2).float() / 255.0
                model.embed_patches(x)

        times = measure(embed, ctx.repeats(3, quick=1))
        return [make_row(case, times, per="patch", per_run=n, items=n, unit="patches/s",
                         note=f"{n} uint8 patches per run, batches of {chunk}, eval, no_grad; {arch}; 1 torch thread")]
    b_p = LINEAGES * PER_LINEAGE
    expression = torch.randn(LINEAGES, len(genes), generator=gen)
    rna_ids = torch.arange(LINEAGES)
    images = torch.rand(b_p, 3, side, side, generator=gen)
    patch_ids = rna_ids.repeat_interleave(PER_LINEAGE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.02)
    model.train()
    parts = {}

    def step() -> None:
        loss, found = model.loss(expression, rna_ids, augment(images, gen), patch_ids, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        parts.update(found)

    steps = 1 if side == 256 else 5
    times = measure(lambda: [step() for _ in range(steps)], ctx.repeats(3, quick=1))
    return [make_row(case, times, per="step", per_run=steps, items=steps * b_p, unit="patches/s",
                     size=f"{case.size} b{b_p}",
                     note=f"{steps} step{'s' * (steps > 1)} per run; losses {'+'.join(parts)} (MultimodalConfig "
                          f"defaults), flip/rot90, AdamW; {LINEAGES} RNA rows, {LINEAGES} lineages x {PER_LINEAGE} "
                          f"patches; {arch}; 1 torch thread")]


def vit_rows(case: Case, ctx: Context) -> list[Row]:
    import torch

    from gliotype.losses.triplet import triplet_hardest
    from gliotype.nn.patch_encoder import PatchEncoder, PatchEncoderConfig

    torch.set_num_threads(2)
    torch.manual_seed(0)
    batch = 8
    model = PatchEncoder(PatchEncoderConfig(embed=768, depth=12, heads=12, projection=256)).train()
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, 256, 256, generator=gen)
    ids = torch.arange(batch // 2).repeat_interleave(2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.02)

    def step() -> None:
        cls, _ = model(images)
        loss = triplet_hardest(model.project(cls), ids, 1e-4)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = measure(step, ctx.repeats(3, quick=1))
    row = make_row(case, times, per="step", items=batch, unit="images/s")
    params = sum(p.numel() for p in model.parameters())
    row.note = (f"ViT-B/16 (embed 768, depth 12, heads 12, {params / 1e6:.1f} M params, no DeiT weights), 256 "
                f"sub-patches; batch-hard triplet, backward, AdamW; {row.throughput / AUTHORS_VIT[0]:.2f}x the "
                f"authors' {AUTHORS_VIT[0]} images/s ({AUTHORS_VIT[1]} GB); {torch.get_num_threads()} threads")
    return [row]
