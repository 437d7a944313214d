"""The training log line: named fields, no number printed twice (docs/training.md, "The
training log")."""

from refinekit.cli.train_progress import LOG_FIELDS, log_fields

ADVERSARIAL = {
    "step": 40,
    "phase": "adversarial",
    "refiner_adversarial": 0.76,
    "self_regularisation": 0.1936,
    "mean_abs_change": 0.1936,
    "disc_real": 0.94,
    "disc_refined": 0.63,
    "disc_history": 0.64,
    "label_accuracy": 0.992,
    "augment_p": 0.0,
    "ada_signal": 0.0,
    "images_per_second": 100.0,
}


def test_reg_is_left_out_where_it_is_the_change():
    fields = dict(log_fields(ADVERSARIAL))
    assert fields == {
        "R_adv": "0.760",
        "change": "0.1936",
        "D_real": "0.940",
        "D_refined": "0.630",
        "D_history": "0.640",
        "label_acc": "0.992",
    }
    values = [value for _, value in log_fields(ADVERSARIAL)]
    assert len(values) == len(set(values))


def test_reg_is_shown_where_it_differs_and_ada_while_it_augments():
    record = {**ADVERSARIAL, "self_regularisation": 0.05, "augment_p": 0.12, "ada_signal": 0.61}
    fields = dict(log_fields(record))
    assert fields["reg"] == "0.0500" and fields["change"] == "0.1936"
    assert fields["ada_p"] == "0.120" and fields["ada_rt"] == "0.61"


def test_pretraining_shows_only_what_it_computes():
    refiner = {"phase": "pretrain_refiner", "self_regularisation": 0.01, "mean_abs_change": 0.02}
    refiner.update(refiner_adversarial=0.0, disc_real=0.0, disc_refined=0.0, disc_history=0.0)
    assert [n for n, _ in log_fields(refiner)] == ["reg", "change"]
    disc = {"phase": "pretrain_disc", "disc_real": 0.5, "disc_refined": 0.4, "disc_history": 0.4}
    assert [n for n, _ in log_fields(disc)] == ["D_real", "D_refined", "D_history"]


def test_every_log_field_is_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    section = text.split("## The training log", 1)[1].split("\n## ", 1)[0]
    for key, name, _ in LOG_FIELDS:
        assert f"`{name}`" in section and f"`{key}`" in section, name
