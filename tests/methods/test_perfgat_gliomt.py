"""Paper 002's baselines: ``perfgat`` (parcel graph + GAT on DSC curves) and ``gliomt`` (multimodal ViT)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gliotype.methods import create_method, get_spec
from gliotype.methods.gliomt import largest_area_slice, slice_window, tumour_slices
from gliotype.methods.perfgat import parcel_graph, resample_curves
from gliotype.nn.gliomt import GlioMTNet
from gliotype.nn.perfgat import PerfGATNet, batch_graphs
from gliotype.train import train

CONTRACT_FILES = ("config.yaml", "splits.csv", "predictions.csv", "metrics.json", "cohort.json",
                  "model/fold0.safetensors", "model/fold0.json")


# ---- perfgat: the parcel graph, by hand ------------------------------------------------------------

def hand_tumour():
    """An 8x8x4 mask cut by parcel_voxels=4 into a 2x2x1 grid; parcel (1,0,0) holds no tumour voxel.

    Voxels in np.nonzero order and their parcels: (0,0,0)->(0,0,0), (1,4,0)->(0,1,0), (2,7,3)->(0,1,0),
    (3,3,3)->(0,0,0), (5,6,1)->(1,1,0). Voxel i's curve is 10*i + (0, 1, 4, 9, 16) (T = 5).
    """
    mask = np.zeros((8, 8, 4), np.uint8)
    for v in [(0, 0, 0), (1, 4, 0), (2, 7, 3), (3, 3, 3), (5, 6, 1)]:
        mask[v] = 1
    curves = 10.0 * np.arange(5)[:, None] + np.array([0, 1, 4, 9, 16.0])[None]
    return mask, curves.astype(np.float32)


def test_resample_curves_is_linear_between_first_and_last_point():
    np.testing.assert_allclose(resample_curves(np.array([[0.0, 2.0, 4.0]]), 5), [[0, 1, 2, 3, 4]])
    np.testing.assert_allclose(resample_curves(np.array([[1.0, 5.0, 3.0]]), 3), [[1, 5, 3]])
    np.testing.assert_allclose(resample_curves(np.array([[7.0]]), 4), [[7, 7, 7, 7]])


def test_parcel_graph_nodes_are_the_occupied_parcels():
    mask, curves = hand_tumour()
    graph = parcel_graph(mask, curves, parcel_voxels=4, curve_length=9)
    np.testing.assert_array_equal(graph.parcels, [[0, 0, 0], [0, 1, 0], [1, 1, 0]])
    np.testing.assert_allclose(graph.fraction, np.array([2, 2, 1]) / 64)


def test_parcel_graph_joins_all_26_neighbours_both_ways():
    mask, curves = hand_tumour()
    graph = parcel_graph(mask, curves, parcel_voxels=4)
    # (0,0,0)-(0,1,0) share a face, (0,1,0)-(1,1,0) a face, (0,0,0)-(1,1,0) an edge: all three pairs
    np.testing.assert_array_equal(graph.edge_index, [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]])


def test_parcels_two_apart_are_not_joined():
    mask = np.zeros((12, 4, 4), np.uint8)
    mask[0, 0, 0] = mask[11, 3, 3] = 1  # parcels (0,0,0) and (2,0,0)
    assert parcel_graph(mask, np.ones((2, 3))).edge_index.shape == (2, 0)
    mask[5, 0, 0] = 1  # parcel (1,0,0) bridges them
    np.testing.assert_array_equal(parcel_graph(mask, np.ones((3, 3))).edge_index, [[0, 1, 1, 2], [1, 0, 2, 1]])


def test_parcel_curves_are_the_resampled_voxel_means():
    mask, curves = hand_tumour()
    graph = parcel_graph(mask, curves, parcel_voxels=4, curve_length=9)
    means = np.stack([(curves[0] + curves[3]) / 2, (curves[1] + curves[2]) / 2, curves[4]])
    t = np.linspace(0, 4, 9)
    expected = np.stack([np.interp(t, np.arange(5), m) for m in means])
    np.testing.assert_allclose(graph.curves, expected, rtol=1e-6)
    assert graph.features().shape == (3, 10) and graph.features()[2, -1] == pytest.approx(1 / 64)


def test_parcel_graph_rejects_curves_that_do_not_match_the_mask():
    mask, curves = hand_tumour()
    with pytest.raises(ValueError, match="one row per tumour voxel"):
        parcel_graph(mask, curves[:4])
    with pytest.raises(ValueError, match="empty"):
        parcel_graph(np.zeros_like(mask), curves[:0])


# ---- perfgat: the network ----------------------------------------------------------------------------

def test_batch_graphs_shifts_edges_by_the_nodes_before():
    a = {"x": torch.zeros(2, 3), "edge_index": torch.tensor([[0, 1], [1, 0]])}
    b = {"x": torch.ones(3, 3), "edge_index": torch.tensor([[0, 2], [2, 0]])}
    out = batch_graphs([a, b])
    assert out["edge_index"].tolist() == [[0, 1, 2, 4], [1, 0, 4, 2]]
    assert out["batch"].tolist() == [0, 0, 1, 1, 1] and out["x"].shape == (5, 3)


def test_perfgat_scores_a_graph_the_same_alone_or_in_a_batch():
    torch.manual_seed(0)
    net = PerfGATNet(5, 3).eval()
    graphs = [{"x": torch.randn(n, 5), "edge_index": torch.tensor([[0, 1], [1, 0]])} for n in (2, 4)]
    batch = batch_graphs(graphs)
    with torch.no_grad():
        together = net(batch["x"], batch["edge_index"], batch["batch"])
        alone = net(graphs[1]["x"], graphs[1]["edge_index"], torch.zeros(4, dtype=torch.long))
    assert together.shape == (2, 3)
    torch.testing.assert_close(together[1:], alone)


def test_perfgat_method_reads_stage_arrays_of_any_length():
    method = create_method("perfgat", curve_length=8)
    mask, curves = hand_tumour()
    longer = np.repeat(curves, 9, axis=1)  # T = 45 instead of 5: same features size
    items = [method.item({"perfusion_input": {"mask": mask, "curves": c}}) for c in (curves, longer)]
    assert items[0]["x"].shape == items[1]["x"].shape == (3, 9)
    batch, y = method.collate([(it, -1) for it in items])
    logits = method.logits(method.build(2).eval(), batch)
    assert logits.shape == (2, 2) and y.tolist() == [-1, -1]


# ---- gliomt --------------------------------------------------------------------------------------------

def test_slice_picker_centres_on_the_largest_tumour_section():
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[2:4, 2:4, 1] = 1   # 4 voxels
    mask[1:4, 1:4, 5] = 1   # 9 voxels: the largest
    mask[3, 3, 6] = 1
    assert largest_area_slice(mask) == 5
    np.testing.assert_array_equal(slice_window(mask, 3), [4, 5, 6])
    mask[:, :, 7] = 1  # now the last slice is largest: the window stays inside the cube
    np.testing.assert_array_equal(slice_window(mask, 3), [5, 6, 7])


def test_tumour_slices_puts_each_sequence_slices_first():
    mask = np.zeros((4, 4, 6), np.uint8)
    mask[:, :, 2] = 1
    image = np.broadcast_to(np.arange(6, dtype=np.float16), (4, 4, 4, 6)) + 10 * np.arange(4)[:, None, None, None]
    out = tumour_slices(image, mask, 3)
    assert out.shape == (4, 3, 4, 4) and out.dtype == np.float32
    np.testing.assert_array_equal(out[2, :, 0, 0], [21, 22, 23])


def test_gliomt_is_not_modality_blind():
    torch.manual_seed(0)
    net = GlioMTNet(3, image_size=16, patch=4).eval()
    x = torch.randn(2, 4, 3, 16, 16)
    with torch.no_grad():
        logits, swapped = net(x), net(x[:, [1, 0, 2, 3]])
    assert logits.shape == (2, 3) and net.tokens(x).shape == (2, 1 + 4 * 16, 64)
    assert not torch.allclose(logits, swapped, atol=1e-4)


def test_gliomt_config_names_what_does_not_fit():
    with pytest.raises(ValueError, match="multiple of patch"):
        create_method("gliomt", size=20, patch=8)
    with pytest.raises(ValueError, match=r"expects input \(B, 4, 3, 16, 16\)"):
        GlioMTNet(2, image_size=16, patch=4)(torch.zeros(1, 4, 3, 32, 32))


# ---- end to end ----------------------------------------------------------------------------------------

def check_run(run, n_patients):
    for name in CONTRACT_FILES:
        assert (run / name).is_file(), name
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == n_patients and pred.patient_id.is_unique
    probs = pred[[c for c in pred.columns if c.startswith("prob_")]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_registry_knows_both_baselines():
    assert get_spec("perfgat").modalities == ("dsc", "seg")
    assert get_spec("gliomt").modalities == ("mri", "seg")


def test_gliomt_learns_the_planted_t2_signal(tiny_mri_cohort, tmp_path):
    run = train(tiny_mri_cohort, "gliomt", "idh", tmp_path / "run", folds=2, epochs=8, seed=0,
                overrides={"size": 16, "spacing": 3.0, "patch": 4, "batch_size": 4})
    check_run(run, 16)
    assert json.loads((run / "metrics.json").read_text())["metrics"]["auc"]["value"] >= 0.9


def test_perfgat_learns_the_planted_bolus_depth(tiny_dsc_cohort, tmp_path):
    run = train(tiny_dsc_cohort, "perfgat", "idh", tmp_path / "run", folds=2, epochs=6, seed=0,
                overrides={"batch_size": 4, "parcel_voxels": 2, "lr": 3e-3})
    check_run(run, 12)
    assert json.loads((run / "metrics.json").read_text())["metrics"]["auc"]["value"] >= 0.9


@pytest.mark.slow
def test_perfgat_trains_on_the_synthetic_generator(tmp_path):
    from gliotype.cohort.synth import synthesize

    cohort = synthesize(tmp_path / "cohort", n_patients=12, seed=3, optional=("dsc",))
    run = train(cohort, "perfgat", "idh", tmp_path / "run", folds=2, epochs=2, seed=0, overrides={"batch_size": 4})
    check_run(run, 12)
