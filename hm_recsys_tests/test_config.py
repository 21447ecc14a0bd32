"""The config file: values become defaults (and code versions); bad files are rejected before anything runs."""

import pytest

from hm_recsys.defs import config


def write(tmp_path, text: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("ranker_hparams: {n_trail: 5}\n", "ranker_hparams.n_trail: Extra inputs are not permitted"),
        ("ranker_hparams: {n_trials: -3}\n", "ranker_hparams.n_trials: Input should be greater than or equal to 1, got -3"),
        ("ranker_hparams: {objective: Bogus}\n", "ranker_hparams.objective"),
        ("- ranker_hparams\n- two_tower\n", "expected a mapping of asset name -> settings, got a list"),
        ("42\n", "expected a mapping of asset name -> settings, got a int"),
        ("rankr_hparams: {n_trials: 5}\n", "no configurable asset named 'rankr_hparams'"),
        ("ranker_hparams: 5\n", "ranker_hparams: expected a mapping of field -> value, got 5"),
        ("two_tower: {epochs: 0}\n", "two_tower.epochs: Input should be greater than or equal to 1"),
        ("ranker_hparams: {n_trials: [1\n", "not valid YAML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as e:
        config.read_config(path)
    assert str(path) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_values_become_defaults_and_change_only_that_code_version(tmp_path):
    from hm_recsys.defs.versioning import code_version

    base = config.resolve(tmp_path)
    tuned = config.resolve(tmp_path, write(tmp_path, "ranker_hparams: {n_trials: 3}\n"))
    assert tuned["ranker_hparams"]().n_trials == 3 and base["ranker_hparams"]().n_trials == 6
    assert code_version("1", tuned["ranker_hparams"]) != code_version("1", base["ranker_hparams"])
    for name in ("two_tower", "tfrecords", "retrieval_candidates", "image_embeddings"):
        assert code_version("1", tuned[name]) == code_version("1", base[name])
    with pytest.raises(Exception):
        tuned["ranker_hparams"](n_trials=0)  # the constraint survives the new default


def test_data_folder_config_is_picked_up(tmp_path, monkeypatch):
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    assert config.config_path(tmp_path) is None
    (tmp_path / config.CONFIG_FILE).write_text("ranker_hparams: {n_trials: 4}\n")
    assert config.resolve(tmp_path)["ranker_hparams"]().n_trials == 4


def test_ranker_loss_carries_yetirank_permutations(tmp_path):
    base = config.resolve(tmp_path)["ranker_hparams"]()
    assert base.loss() == "YetiRank:permutations=1"
    three = config.resolve(tmp_path, write(tmp_path, "ranker_hparams: {yetirank_permutations: 3}\n"))["ranker_hparams"]()
    assert three.loss() == "YetiRank:permutations=3"
    pointwise = config.resolve(tmp_path, write(tmp_path, "ranker_hparams: {objective: Logloss}\n"))["ranker_hparams"]()
    assert pointwise.loss() == "Logloss"
