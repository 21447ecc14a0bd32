"""Two-tower training: loss goes down, fine-tuning starts from the trained weights, weeks never leak,
same seed -> same weights, and end-to-end candidates are well formed."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest

from hm_recsys.retrieval import tf_env

tf_env.tensorflow()

from hm_recsys.retrieval import brute_force, cold_start, tfrecords, tower_features, two_tower  # noqa: E402
from hm_recsys.retrieval.image_embeddings import EMBEDDING_DIM  # noqa: E402
from hm_recsys_tests.leakage import perturb_future  # noqa: E402
from hm_recsys_tests.test_retrieval_tfrecords import TARGET  # noqa: E402

CFG = two_tower.TwoTowerConfig(batch_size=512, epochs=4, finetune_epochs=2, learning_rate=0.01, shuffle_buffer=4096)


def fake_image_embeddings(tables) -> pl.DataFrame:
    """Colour-coded vectors standing in for ResNet50 output (the real network is tested in test_retrieval_images)."""
    rng = np.random.default_rng(0)
    colour = tables.articles["colour_group_code"].to_numpy()
    basis = rng.standard_normal((colour.max() + 1, EMBEDDING_DIM)).astype(np.float32)
    emb = basis[colour] + 0.1 * rng.standard_normal((tables.n_articles, EMBEDDING_DIM)).astype(np.float32)
    has = np.arange(tables.n_articles) % 9 != 8
    emb[~has] = 0
    return pl.DataFrame(
        {"article_idx": tables.articles["article_idx"], "has_image": has,
         "embedding": pl.Series(values=emb, dtype=pl.Array(pl.Float32, EMBEDDING_DIM))}
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tables):
    root = tmp_path_factory.mktemp("two_tower")
    tables = tiny_tables
    images = fake_image_embeddings(tables)
    tfrecords.write_tfrecords(tables, TARGET, root / "tfr", n_shards=2)
    two_tower.train(root / "tfr", root / "trained", CFG, images)
    return tables, images, root


def test_loss_decreases(world):
    _, _, root = world
    history = json.loads((root / "trained" / two_tower.HISTORY).read_text())[0]
    loss = history["loss"]
    assert len(loss) == CFG.epochs and np.isfinite(loss).all()
    assert loss[-1] < loss[0] - 0.1, loss
    assert history["steps_per_epoch"] == -(-history["n_examples"] // CFG.batch_size)


def test_finetune_starts_from_trained_weights(world):
    _, images, root = world
    trained, _ = two_tower.load_model(root / "trained", root / "tfr", images)
    assert np.abs(trained.item_tower.image_table.numpy()).sum() > 0
    history = two_tower.finetune(root / "tfr", root / "trained", root / "finetuned", image_embeddings=images)
    assert history["window"] == "finetune" and len(history["loss"]) == CFG.finetune_epochs
    tuned, meta = two_tower.load_model(root / "finetuned", root / "tfr", images)
    before, after = two_tower.weights_of(trained), two_tower.weights_of(tuned)
    assert len(before) == len(after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    # small fine-tuning steps from the trained weights, not a fresh start
    head = [i for i, w in enumerate(tuned.user_tower.weights) if "head" in w.name and "kernel" in w.name][0]
    assert np.abs(after[head] - before[head]).mean() < 0.5 * np.abs(before[head]).mean()
    assert [h["window"] for h in json.loads((root / "finetuned" / two_tower.HISTORY).read_text())] == ["train", "finetune"]
    with pytest.raises(ValueError, match="architecture"):
        two_tower.finetune(root / "tfr", root / "trained", root / "x", dataclasses.replace(CFG, hidden_dim=16), images)


def test_no_leakage_and_same_seed_same_weights(world, tmp_path):
    """Towers for week W trained on perturbed rows >= W.start: bit-identical weights and candidates."""
    tables, images, root = world
    cfg = dataclasses.replace(CFG, epochs=2)
    tfrecords.write_tfrecords(perturb_future(tables, TARGET), TARGET, tmp_path / "tfr", n_shards=2)
    two_tower.train(root / "tfr", tmp_path / "a", cfg, images)
    two_tower.train(tmp_path / "tfr", tmp_path / "b", cfg, images)
    a, _ = two_tower.load_model(tmp_path / "a", root / "tfr", images)
    b, _ = two_tower.load_model(tmp_path / "b", tmp_path / "tfr", images)
    for wa, wb in zip(two_tower.weights_of(a), two_tower.weights_of(b), strict=True):
        np.testing.assert_array_equal(wa, wb)
    ca, _ = brute_force.retrieve(tmp_path / "a", root / "tfr", k=20, image_embeddings=images)
    cb, _ = brute_force.retrieve(tmp_path / "b", tmp_path / "tfr", k=20, image_embeddings=images)
    assert ca.equals(cb)


def test_candidates_and_exports(world):
    tables, images, root = world
    cands, info = brute_force.retrieve(root / "trained", root / "tfr", k=30, image_embeddings=images)
    assert cands.schema == pl.Schema(brute_force.CANDIDATE_SCHEMA)
    assert cands.height == tables.n_customers * 30 and info["n_articles"] == tables.n_articles
    per = cands.group_by("customer_idx").agg(d=pl.col("article_idx").n_unique(), r=pl.col("rank").max())
    assert per.height == tables.n_customers and (per["d"] == 30).all() and (per["r"] == 29).all()
    users, items = brute_force.export_embeddings(root / "trained", root / "tfr", images)
    assert users.height == tables.n_customers and items.height == tables.n_articles
    u, v = users["embedding"].to_numpy(), items["embedding"].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-4)
    first = cands.filter(pl.col("customer_idx") == 7).sort("rank")
    np.testing.assert_allclose(first["score"].to_numpy(), (v[first["article_idx"].to_numpy()] @ u[7]), rtol=1e-4, atol=1e-5)
    # customers without history (customer_key 0) still get candidates from their features
    users_frame, _ = tfrecords.load_serving_features(root / "tfr")
    cold = users_frame.filter(pl.col("customer_key") == 0)["customer_idx"]
    assert cands.filter(pl.col("customer_idx").is_in(cold.implode())).height == cold.len() * 30


def test_without_images_and_cold_start_measure(world, tmp_path):
    tables, images, root = world
    cfg = dataclasses.replace(CFG, epochs=2, finetune_epochs=1, use_images=False)
    table = cold_start.ablation(tables, TARGET, root / "tfr", images, tmp_path, cfg, k=20,
                                with_images_model_dir=root / "trained")
    assert table["variant"].to_list() == ["with_images", "without_images"]
    assert ((table["recall_at_k"] >= 0) & (table["recall_at_k"] <= 1)).all()
    pairs = cold_start.cold_pairs(tables, TARGET)
    assert pairs.height > 0 and (table["n_cold_pairs"] == pairs.height).all()
    meta = json.loads((tmp_path / "without_images" / "finetuned" / two_tower.MODEL_META).read_text())
    assert meta["image_shape"] is None and meta["config"]["use_images"] is False


def _weight_file_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != two_tower.MODEL_META)


def test_checkpoint_leaves_out_image_table_and_reloads_exactly(world, tmp_path):
    """The checkpoint holds the trained weights only: its size does not follow the image table, and the
    reloaded towers (table re-attached from the frame) score exactly as the saved ones."""
    tables, images, root = world
    manifest = tfrecords.load_manifest(root / "tfr")
    sizes, table_bytes = {}, {}
    for copies in (1, 4):  # a 4x taller image table (and article count), same weights otherwise
        n = copies * tables.n_articles
        frame = pl.concat([images.with_columns(pl.col("article_idx") + tables.n_articles * c) for c in range(copies)])
        model = two_tower.build_model(dict(manifest, n_articles=n), CFG, tower_features.image_matrix(frame, n))
        two_tower._save(model, tmp_path / str(copies), CFG, manifest, [], root / "tfr", "fingerprint")
        sizes[copies] = _weight_file_bytes(tmp_path / str(copies))
        table_bytes[copies] = model.item_tower.image_table.numpy().nbytes
    weight_bytes = sum(w.numpy().nbytes for w in model.user_tower.weights + model.item_tower.weights) - table_bytes[4]
    assert sizes[1] == sizes[4] < weight_bytes + 64_000 < table_bytes[1]

    matrix = tower_features.image_matrix(images, tables.n_articles)
    before = two_tower.build_model(manifest, CFG, matrix)  # random init: every weight differs from a fresh build
    two_tower._save(before, tmp_path / "m", CFG, manifest, [], root / "tfr", two_tower.fingerprint(matrix))
    after, _ = two_tower.load_model(tmp_path / "m", root / "tfr", images)
    users, items = tfrecords.load_serving_features(root / "tfr")
    np.testing.assert_array_equal(brute_force.item_embeddings(before, items), brute_force.item_embeddings(after, items))
    np.testing.assert_array_equal(brute_force.user_embeddings(before, users), brute_force.user_embeddings(after, users))
    with pytest.raises(ValueError, match="image embeddings frame"):
        two_tower.load_model(tmp_path / "m", root / "tfr")
    with pytest.raises(ValueError, match="fingerprint"):
        two_tower.load_model(tmp_path / "m", root / "tfr", images.with_columns(has_image=~pl.col("has_image")))


@pytest.mark.parametrize("optimizer, absent_rows_move", [("adam", True), ("sparse_adam", False)])
def test_sparse_adam_updates_only_the_id_rows_in_the_batch(world, optimizer, absent_rows_move):
    """Adam keeps moving every id row it has ever seen (its momentum decays over the whole table: a pass over
    1.37M rows per step at full scale); sparse_adam's Adagrad leaves rows that are not in the batch alone."""
    tf, _ = tf_env.tensorflow()
    _, _, root = world
    manifest = tfrecords.load_manifest(root / "tfr")
    cfg = dataclasses.replace(CFG, optimizer=optimizer, use_images=False, id_dropout=0.0)
    tf.keras.utils.set_random_seed(0)
    model = two_tower.build_model(manifest, cfg)
    model.compile(optimizer=two_tower._optimizer(tf, optimizer, cfg.learning_rate, model, cfg.embedding_learning_rate))
    ds = tfrecords.read_dataset(tfrecords.window_paths(root / "tfr", "train"), manifest["feature_spec"], 256)
    first, second = list(ds.take(2))
    table = model.user_tower.id_embedding.embeddings
    model.fit(tf.data.Dataset.from_tensors(first), verbose=0)
    before = table.numpy()
    model.fit(tf.data.Dataset.from_tensors(second), verbose=0)
    after = table.numpy()
    in_second = np.unique(second["customer_key"].numpy())
    only_first = np.setdiff1d(np.unique(first["customer_key"].numpy()), in_second)
    assert len(only_first) and len(in_second)
    assert not np.allclose(before[in_second], after[in_second])  # the batch's own rows learn under both
    assert (not np.array_equal(before[only_first], after[only_first])) == absent_rows_move


def test_defaults_follow_the_data_size():
    """``auto`` keeps Adam on the demo world's 40k customers and goes sparse on the full world's 1.37M; the step
    budget keeps the demo's 3 epochs (333 steps each) and trains the full world's 14k-step anchor epoch once."""
    cpu = two_tower.TwoTowerConfig.cpu_preset()
    assert (cpu.optimizer, cpu.max_steps, cpu.batch_size) == ("auto", 15_000, 1024)
    assert two_tower.resolved_fit(cpu, 40_000, 341_000, cpu.epochs) == ("adam", 3)
    assert two_tower.resolved_fit(cpu, 1_371_980, 14_300_000, cpu.epochs) == ("sparse_adam", 1)
    assert two_tower.resolved_fit(cpu, 1_371_980, 1_200_000, cpu.finetune_epochs) == ("sparse_adam", 3)  # 1,172 steps x 3
    assert two_tower.resolved_fit(cpu, 1_371_980, 6_000_000, 3) == ("sparse_adam", 2)  # 5,860 steps: 2 fit in 15k
    assert two_tower.resolved_fit(cpu, 10, 100, 0) == ("adam", 0)  # no fine-tune stays none
    explicit = dataclasses.replace(cpu, optimizer="adam", max_steps=None)
    assert two_tower.resolved_fit(explicit, 1_371_980, 14_300_000, 3) == ("adam", 3)
