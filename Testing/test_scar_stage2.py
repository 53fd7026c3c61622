"""Second-stage scar model: intensity references, crops, predictions confined to the first
stage's myocardium, training that resumes from its checkpoint."""

import numpy as np
import pytest
import torch

from cmrrisk import labels as L
from cmrrisk.segmentation import scar_stage2 as S


def _case(seed=0, scar=True):
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:4, 0:100, 0:110]
    r = np.hypot(y - 50, x - 60)
    lab = np.zeros((4, 100, 110), np.uint8)
    lab[r < 20] = L.LV_MYOCARDIUM
    lab[r < 13] = L.LV_BLOOD_POOL
    img = np.full(lab.shape, 40.0, np.float32)
    img[lab == L.LV_BLOOD_POOL] = 200.0
    img[lab == L.LV_MYOCARDIUM] = 20.0
    if scar:
        s = (lab == L.LV_MYOCARDIUM) & (x < 52)
        lab[s] = L.SCAR
        img[s] = 180.0
        m = s & (r < 16) & (y > 45) & (y < 55)
        lab[m] = L.MVO
        img[m] = 15.0
    return img + rng.normal(0, 2, img.shape).astype(np.float32), lab


def test_normalisation_puts_remote_at_0_and_blood_at_1():
    img, lab = _case()
    myo = np.isin(lab, L.MYOCARDIAL)
    norm, ref = S.normalise(img, myo)
    assert abs(np.mean(norm[lab == L.LV_MYOCARDIUM])) < 0.05  # remote myocardium
    assert abs(np.median(norm[lab == L.LV_BLOOD_POOL]) - 1) < 0.05
    nsd, fwhm = S.classic_maps(norm, myo, ref)
    scar = lab == L.SCAR
    assert nsd[scar].mean() > 0.95 and nsd[lab == L.LV_MYOCARDIUM].mean() < 0.05
    assert fwhm[scar].mean() > 0.95 and not fwhm[~myo].any()


def test_crop_and_uncrop_round_trip_near_the_border():
    a = np.arange(2 * 50 * 60).reshape(2, 50, 60)
    c = S.crop(a, 5, 55, 32)  # centre near the edge: zero padding
    assert c.shape == (2, 32, 32)
    back = S.uncrop(c, 5, 55, (50, 60))
    inside = back != 0
    assert inside.any() and np.array_equal(back[inside], a[inside])


def test_prediction_stays_inside_the_myocardium_and_apply_keeps_the_wall():
    img, lab = _case()
    myo = np.isin(lab, L.MYOCARDIAL)
    torch.manual_seed(0)
    net = S.ScarNet(4)
    with torch.no_grad():  # a head that calls everything scar
        net.head.bias[:] = torch.tensor([-5.0, 5.0, -5.0])
    s2 = S.predict(net, img, myo, classic=True, flips=False)
    assert s2.shape == img.shape and not s2[~myo].any() and (s2[myo] == L.SCAR).all()
    out = S.apply(lab, s2)
    assert np.array_equal(np.isin(out, L.MYOCARDIAL), myo)
    assert np.array_equal(out == L.LV_BLOOD_POOL, lab == L.LV_BLOOD_POOL)


def test_jitter_changes_the_mask_but_keeps_it_near():
    _, lab = _case()
    myo = np.isin(lab, L.MYOCARDIAL)
    rng = np.random.default_rng(3)
    masks = [S.jitter_mask(myo, rng) for _ in range(8)]
    assert any(not np.array_equal(m, myo) for m in masks)
    for m in masks:
        inter = (m & myo).sum()
        assert 2 * inter / (m.sum() + myo.sum()) > 0.6


def test_training_resumes_from_its_checkpoint(tmp_path):
    torch.set_num_threads(1)
    cases = [_case(0), _case(1, scar=False)]
    ck = tmp_path / "s2.pt"
    S.train(cases, str(ck), classic=False, iterations=4, batch=2, checkpoint_every=2)
    assert torch.load(ck, weights_only=True)["iteration"] == 4
    full = {k: v.clone() for k, v in S.train(cases, str(ck), classic=False, iterations=4, batch=2).state_dict().items()}
    # a checkpoint at iteration 4 of 4: nothing left to do, the same weights come back
    again = S.train(cases, str(ck), classic=False, iterations=4, batch=2).state_dict()
    assert all(torch.equal(full[k], again[k]) for k in full)
    # a run cut after 2 iterations continues from there, not from the start
    ck2 = tmp_path / "cut.pt"
    S.train(cases, str(ck2), classic=False, iterations=2, batch=2, checkpoint_every=1)
    st = torch.load(ck2, weights_only=True)
    st["sched"]["total_steps"] = 4
    st["net"]["head.bias"] = torch.full((3,), 7.0)  # a mark that a fresh start would not carry
    torch.save(st, ck2)
    net = S.train(cases, str(ck2), classic=False, iterations=4, batch=2, checkpoint_every=1)
    assert torch.load(ck2, weights_only=True)["iteration"] == 4
    assert torch.allclose(net.head.bias, torch.full((3,), 7.0), atol=0.05)  # two small steps from the mark


def test_fusion_follows_the_first_stage_on_hearts_without_scar_and_keeps_its_mvo():
    img, lab = _case()
    s2 = np.zeros(lab.shape, np.uint8)
    s2[np.isin(lab, L.SCAR_WITH_MVO)] = L.SCAR
    s2[:, 50, 75:79] = L.MVO  # a stage-2 MVO elsewhere becomes scar
    healthy = np.where(np.isin(lab, L.MYOCARDIAL), L.LV_MYOCARDIUM, lab).astype(np.uint8)
    assert not S.fuse(healthy, s2).any()  # the first stage finds no scar: none is added
    fused = S.fuse(lab, s2)
    assert np.array_equal(fused == L.MVO, lab == L.MVO)
    assert (fused[:, 50, 75:79] == L.SCAR).all()
    assert np.array_equal(fused > 0, (s2 > 0) | (lab == L.MVO))


def test_context_channels_hold_the_neighbouring_slices_and_repeat_the_edges():
    img, lab = _case()
    img[1] += 500.0  # mark slice 1
    myo = np.isin(lab, L.MYOCARDIAL)
    x = S.input_channels(img, myo, classic=False, context=True)
    assert x.shape[0] == S.n_inputs(False, True) == 4
    below, above = x[2], x[3]
    assert np.array_equal(below[2], x[0][1]) and np.array_equal(above[0], x[0][1])
    assert np.array_equal(below[0], x[0][0]) and np.array_equal(above[3], x[0][3])  # edges repeated
    assert S.intensity_channels(False, True) == [0, 2, 3] and S.intensity_channels(True, True) == [0, 4, 5]
    assert np.array_equal(S.input_channels(img, myo, classic=False), x[:2])


def test_focal_tversky_charges_a_miss_more_than_a_false_alarm():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:6, 2:6] = 1

    def logits(mask):
        out = torch.zeros(1, 3, 8, 8)
        out[:, 0] = 8.0
        out[0, 0][mask] = 0.0
        out[0, 1][mask] = 8.0  # as wrong on a missed pixel as on a false alarm
        return out

    scar = target[0] > 0
    miss = scar.clone()
    miss[2:4, 2:6] = False  # half the scar missed (8 pixels)
    extra = scar.clone()
    extra[6:8, 2:6] = True  # 8 pixels called scar outside it
    ft = [float(S.loss_fn(logits(m), target, kind="focal_tversky")) for m in (miss, extra)]
    dice = [float(S.loss_fn(logits(m), target, kind="dice_focal")) for m in (miss, extra)]
    assert ft[0] > ft[1]
    assert abs(dice[0] - dice[1]) < abs(ft[0] - ft[1])
    with pytest.raises(ValueError, match="loss"):
        S.loss_fn(logits(scar), target, kind="nope")


def test_a_25d_focal_tversky_network_trains_and_predicts(tmp_path):
    torch.set_num_threads(1)
    img, lab = _case(0)
    net = S.train([(img, lab), _case(1, scar=False)], str(tmp_path / "c.pt"), classic=False, context=True,
                  loss="focal_tversky", iterations=2, batch=2)
    assert net.enc[0][0].in_channels == 4
    myo = np.isin(lab, L.MYOCARDIAL)
    s2 = S.predict(net, img, myo, classic=False, context=True)
    assert s2.shape == img.shape and not s2[~myo].any()
    with pytest.raises(ValueError, match="loss"):
        S.train([(img, lab)], str(tmp_path / "d.pt"), classic=False, loss="nope", iterations=1)



class _Pointwise(torch.nn.Module):
    """Scar wherever the normalised intensity is high, pixel by pixel: its answer does not depend on
    the view, so views turned back correctly before averaging give the plain answer again."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        bright = x[:, :1]
        return torch.cat([torch.full_like(bright, 0.5), bright, torch.full_like(bright, -9.0)], 1)


@pytest.mark.parametrize("flips,rotations,views", [(True, False, 3), (False, True, 4), (True, True, 8)])
def test_test_time_views_are_turned_back_before_averaging(flips, rotations, views):
    img, lab = _case()  # scar on the left of the wall only: not symmetric
    myo = np.isin(lab, L.MYOCARDIAL)
    net = _Pointwise()
    plain = S.predict(net, img, myo, classic=False, flips=False)
    assert net.calls == 1 and (plain == L.SCAR).sum() > 0.9 * (lab == L.SCAR).sum()
    net.calls = 0
    out = S.predict(net, img, myo, classic=False, flips=flips, rotations=rotations)
    assert net.calls == views
    assert np.array_equal(out, plain)


class _Background(torch.nn.Module):
    """Background everywhere, surely."""

    def forward(self, x):
        out = torch.zeros(x.shape[0], 3, *x.shape[-2:])
        out[:, 0] = 50.0
        return out


def test_several_networks_average_their_probabilities():
    img, lab = _case()
    myo = np.isin(lab, L.MYOCARDIAL)
    one = S.predict(_Pointwise(), img, myo, classic=False)
    assert (one == L.SCAR).any()
    assert np.array_equal(S.predict([_Pointwise(), _Pointwise()], img, myo, classic=False), one)
    assert not S.predict([_Pointwise(), _Background()], img, myo, classic=False).any()
