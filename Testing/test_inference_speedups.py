"""Inference-time speed-ups that must not change results: batch normalisation folded into the
convolutions (network.fuse_for_inference), hole filling on the mask's bounding box
(postprocess.fill_holes) and the slices split over threads (Segmenter.PARALLEL_SLICES)."""

import numpy as np
import pytest
import torch
from scipy import ndimage


def _bundled_network(name):
    from cmrrisk import modeldir
    from cmrrisk.segmentation.network import build_network

    config, state = modeldir.load(modeldir.resolve(name))
    net = build_network(config)
    net.load_state_dict(state)
    return net.eval()


@pytest.mark.parametrize("name", ["cine", "lge"])
def test_fused_network_computes_what_the_trained_one_does(name):
    from cmrrisk.segmentation.network import fuse_for_inference

    ref = _bundled_network(name)
    fused = fuse_for_inference(_bundled_network(name))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ref.modules())
    g = torch.Generator().manual_seed(0)
    # an image-like input (smooth blobs in [0, 1]) on a grid that is a multiple of 16
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 96, 112, generator=g), 9, 1, 4)
    with torch.inference_mode():
        a, b = ref(x), fused(x)
    assert a.shape == b.shape
    assert float((a - b).abs().max()) < 1e-3 * max(1.0, float(a.abs().max()))
    assert float((a.argmax(1) == b.argmax(1)).float().mean()) > 0.999

    # idempotent: a second call changes nothing
    before = {k: v.clone() for k, v in fused.state_dict().items()}
    fuse_for_inference(fused)
    after = fused.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_fusing_a_network_in_training_mode_is_refused():
    from cmrrisk.segmentation.network import fuse_for_inference

    net = _bundled_network("cine").train()
    with pytest.raises(ValueError, match="evaluation mode"):
        fuse_for_inference(net)


def test_segmenter_runs_the_fused_network():
    from cmrrisk.segmentation.infer import Segmenter

    seg = Segmenter.load("cine", tta=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in seg.net.modules())


def test_fill_holes_on_the_bounding_box_equals_scipy():
    from cmrrisk.segmentation.postprocess import fill_holes

    rng = np.random.default_rng(0)
    masks = [np.zeros((40, 50), bool)]
    yy, xx = np.mgrid[:40, :50]
    r = np.hypot(yy - 20, xx - 25)
    masks.append((r > 6) & (r < 10))                  # a ring: its hole is filled
    masks.append(((r > 6) & (r < 10)) & (xx < 27))    # an open ring: nothing to fill
    edge = (np.hypot(yy - 3, xx - 3) > 2) & (np.hypot(yy - 3, xx - 3) < 6)
    masks.append(edge)                                # a ring cut by the image border
    masks += [rng.random((40, 50)) < p for p in (0.3, 0.55, 0.7)]  # speckle, many small holes
    for m in masks:
        got = fill_holes(m)
        assert got.dtype == bool and got.shape == m.shape
        np.testing.assert_array_equal(got, ndimage.binary_fill_holes(m))
    assert fill_holes(masks[1]).sum() > masks[1].sum()


@pytest.mark.parametrize("name", ["cine", "lge"])
def test_parallel_slices_give_the_one_thread_scores(name, monkeypatch):
    """With 2 intra-op threads the segmenter splits the slices over 2 Python threads of one
    intra-op thread each: scores equal to a one-thread run bit for bit; with a forward hook it
    stays sequential (hooks see the chunks in order) and the hook gets every slice."""
    import cmrrisk.segmentation.infer as infer

    seg = infer.Segmenter.load(name, tta=False)
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.avg_pool2d(torch.rand(7, 3, 96, 112, generator=g), 9, 1, 4)
    calls = []
    real = infer._parallel_forward
    monkeypatch.setattr(infer, "_parallel_forward", lambda *a: calls.append(a[2]) or real(*a))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            one = seg._forward(x)
        assert calls == []
        torch.set_num_threads(2)
        with torch.inference_mode():
            two = seg._forward(x)
        assert calls == [2]  # the parallel path ran
        assert torch.get_num_threads() == 2  # and gave the threads back
        assert torch.equal(one, two)
        seen = []
        handle = seg.net.down_4.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
        try:
            with torch.inference_mode():
                hooked = seg._forward(x)
        finally:
            handle.remove()
        assert calls == [2] and sum(seen) == 7  # sequential, every slice through the hook
        assert float((hooked - one).abs().max()) < 1e-3
        # a network replaced after a call: its hooks are seen too
        seg.net = infer.Segmenter.load(name, tta=False).net
        handle = seg.net.down_4.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
        try:
            with torch.inference_mode():
                seg._forward(x)
        finally:
            handle.remove()
        assert calls == [2] and sum(seen) == 14
        # the worker threads run in the caller's autograd mode (gradients kept when wanted)
        with torch.enable_grad():
            g = seg._forward(x[:2])
        assert calls == [2, 2] and g.requires_grad
        with torch.no_grad():
            assert not seg._forward(x[:2]).requires_grad
    finally:
        torch.set_num_threads(threads)
