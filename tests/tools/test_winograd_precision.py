"""winograd_precision: the emulated low-precision Winograd forms and their measured error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from posebridge.tools import winograd_precision as wp


@pytest.mark.parametrize("m", wp.TILE_SIZES)
def test_winograd_conv_without_rounding_is_the_convolution_at_odd_sizes(m: int) -> None:
    generator = torch.Generator().manual_seed(m)
    x = torch.randn(5, 7, 11, generator=generator, dtype=torch.float64)  # 7, 11: not multiples of m
    weight = torch.randn(3, 5, 3, 3, generator=generator, dtype=torch.float64)
    ours = wp.winograd_conv(x, weight, m)
    assert ours.shape == (3, 7, 11)
    torch.testing.assert_close(ours, F.conv2d(x[None], weight, padding=1)[0], rtol=0, atol=1e-11)


def test_roundings() -> None:
    values = torch.tensor([[1.0, -0.5, 0.3], [10.0, 2.0, -7.0]], dtype=torch.float64)
    per_row = wp.round_int8(values, (0,))
    assert per_row[0, 0] == 1.0 and per_row[1, 0] == 10.0  # each row's absmax is kept exactly
    assert per_row[0, 2] == pytest.approx(round(0.3 * 127) / 127)
    whole = wp.round_int8(values)
    assert whole[0, 2] == pytest.approx(round(0.3 * 12.7) / 12.7)  # one scale: 0.3 lands on 4/12.7
    assert torch.equal(wp.round_int8(torch.zeros(3, dtype=torch.float64)), torch.zeros(3, dtype=torch.float64))
    bf = wp.round_bf16(torch.tensor([1 + 2 ** -9, 1 + 3 * 2 ** -9], dtype=torch.float64))
    assert bf.tolist() == [1.0, 1 + 2 ** -7]  # 8 significant bits, ties to even


def test_transforms_magnify_rounding_as_the_readme_says() -> None:
    rows = {(r.form, r.precision): r for r in wp.layer_errors(48, 40, 23, 29, seed=3)}
    assert len(rows) == 8
    for precision in wp.PRECISIONS:
        direct = rows["direct", precision].error
        assert 0 < direct < (0.01 if precision == "bf16" else 0.05)
        assert rows["F(2,3)", precision].error < 3 * direct  # F(2,3)'s transforms are +-1 sums
        assert rows["F(4,3)", precision].error > 5 * direct
        assert rows["F(6,3)", precision].error > rows["F(4,3)", precision].error
    assert rows["F(6,3)", "bf16"].multiply_adds == pytest.approx(64 * 4 * 5 / (9 * 23 * 29))
    assert rows["direct", "int8"].multiply_adds == 1.0


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert wp.main(["--channels", "16", "8", "--size", "9", "13"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "3x3 layer 16 -> 8 channels at 9x13, seed 0"
    assert lines[3].startswith("| direct | bf16 | 1.000 | ") and len(lines) == 3 + 8
    with pytest.raises(SystemExit) as stop:
        wp.main(["--size", "0", "5"])
    assert stop.value.code == 2
    with pytest.raises(ValueError, match="precision"):
        wp.layer_errors(4, 4, 5, 5, precisions=("fp8",))
