"""Customers: the public customers.csv columns and each customer's hidden taste and habits.

Hidden per customer: a true age (1.2% publish it empty), gender, whether they shop for children,
a few favourite style clusters drawn by age/gender affinity with focused weights (the low-rank taste
a recommender must learn), colour and price preferences, a visit rate (steady occasional shoppers and
a heavy-tailed minority of frequent, bursty ones), a join day and a churn day, basket size, online
share, repurchase and multi-unit habits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from hm_recsys import schema
from hm_recsys.synth.catalog import Catalog
from hm_recsys.synth.sampling import draw_rows as _draw_rows
from hm_recsys.synth.scales import Scale

N_FAVOURITES = 5
AGE_BUCKET_YEARS = 3
MIN_AGE, MAX_AGE = 16, 99
KIDS_INDEX_GENDER = 2  # clusters with gender "anyone" are the children's ranges


@dataclass
class Population:
    frame: pl.DataFrame          # customers.csv rows (schema.CUSTOMER_COLUMNS)
    age: np.ndarray              # true age (also for customers whose age is published empty)
    age_bucket: np.ndarray       # row of ``background`` prior table used for this customer
    favourites: np.ndarray       # (n, N_FAVOURITES) distinct cluster ids
    fav_weight: np.ndarray       # (n, N_FAVOURITES) taste weights, rows sum to 1
    background: np.ndarray       # share of baskets from the age-typical (non-personal) prior
    background_prior: np.ndarray # (buckets, K) cluster probabilities per age bucket x gender
    light_pref: np.ndarray
    vivid_pref: np.ndarray
    price_sens: np.ndarray
    rate: np.ndarray             # visits per day while active (0: never buys)
    rhythm: np.ndarray           # gamma shape of gaps between visits (>1: periodic)
    join: np.ndarray             # first purchase day; negative: already a customer at the start
    churn: np.ndarray            # no visits from this day on
    basket: np.ndarray           # mean distinct articles per visit
    online: np.ndarray           # chance a visit is online (channel 2)
    repurchase: np.ndarray
    multi_unit: np.ndarray

    @property
    def n(self) -> int:
        return self.frame.height


def hex_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` random 64-char lowercase hex strings (like the competition's sha256 ids)."""
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((n, 64), dtype=np.uint8)
    out[:, 0::2] = digits[raw >> 4]
    out[:, 1::2] = digits[raw & 15]
    return pl.Series(out.view(f"S{schema.CUSTOMER_ID_LENGTH}").ravel()).cast(pl.String)


def _beta_mean(rng: np.random.Generator, mean: float, concentration: float, n: int) -> np.ndarray:
    return rng.beta(mean * concentration, (1 - mean) * concentration, n)


def _cluster_affinity(catalog: Catalog, age: np.ndarray, male: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """(n, K) unnormalised chance that a customer adopts each style cluster as a favourite."""
    z = (age[:, None] - catalog.cluster_age[None, :]) / catalog.cluster_age_width[None, :]
    g = catalog.cluster_gender[None, :]
    gender_fit = np.where(g == 2, 1.0, np.where((g == 1) == male[:, None], 1.0, 0.1))
    kids = np.where(g == KIDS_INDEX_GENDER, np.where(parent[:, None], 1.0, 0.08), 1.0)
    return catalog.cluster_weight[None, :] * np.exp(-0.5 * z * z) * gender_fit * kids


def build_population(scale: Scale, catalog: Catalog, rng: np.random.Generator) -> Population:
    n = scale.n_customers
    n_days = scale.n_days

    # --- demographics: bimodal age (early 20s and around 50), mostly women ---------------------
    young = rng.random(n) < 0.50
    age = np.where(young, rng.normal(23.5, 3.2, n), rng.normal(49.5, 10.5, n))
    age = np.clip(np.round(age), MIN_AGE, MAX_AGE)
    male = rng.random(n) < 0.12
    parent = (age >= 26) & (age <= 52) & (rng.random(n) < 0.5)

    # --- taste: N_FAVOURITES distinct favourite clusters drawn by age/gender/parent affinity --------
    # customers sharing (age, gender, parent) share one affinity row; draw with replacement, then
    # redraw collisions a few rounds (a rare leftover duplicate just concentrates that taste)
    group = ((age - MIN_AGE).astype(np.int64) * 2 + male) * 2 + parent
    n_groups = (MAX_AGE - MIN_AGE + 1) * 4
    g_age = MIN_AGE + np.arange(n_groups) // 4
    table = _cluster_affinity(catalog, g_age.astype(float), (np.arange(n_groups) // 2) % 2 == 1,
                              np.arange(n_groups) % 2 == 1)
    favourites = np.stack([_draw_rows(table, group, rng) for _ in range(N_FAVOURITES)], axis=1)
    for _ in range(12):
        dup = np.zeros(favourites.shape, dtype=bool)
        for j in range(1, N_FAVOURITES):
            dup[:, j] = (favourites[:, :j] == favourites[:, j:j + 1]).any(axis=1)
        rows, cols = np.nonzero(dup)
        if rows.size == 0:
            break
        favourites[rows, cols] = _draw_rows(table, group[rows], rng)
    fav_weight = rng.dirichlet(np.full(N_FAVOURITES, scale.taste_concentration), n)
    background = _beta_mean(rng, scale.background_share, 6.0, n)
    n_buckets = (MAX_AGE - MIN_AGE) // AGE_BUCKET_YEARS + 1
    bucket_age = MIN_AGE + AGE_BUCKET_YEARS * np.arange(n_buckets) + 1.0
    prior = np.concatenate([
        _cluster_affinity(catalog, bucket_age, np.full(n_buckets, is_male), np.full(n_buckets, True)) *
        np.where(catalog.cluster_gender == KIDS_INDEX_GENDER, 0.6, 1.0)[None, :]
        for is_male in (False, True)
    ])
    prior /= prior.sum(axis=1, keepdims=True)
    age_bucket = ((age - MIN_AGE) // AGE_BUCKET_YEARS).astype(np.int64) + n_buckets * male

    light_pref = rng.normal(np.where(age >= 40, 0.25, -0.1), 0.9)
    vivid_pref = rng.normal(np.where(age < 28, 0.35, -0.25), 0.8)
    price_sens = rng.normal(0.025 * (36 - age), 0.5)

    # --- public columns ---------------------------------------------------------------------------
    fn = rng.random(n) < 0.348
    active = np.where(fn, rng.random(n) < 0.962, rng.random(n) < 0.0005)
    u = rng.random(n)
    club = np.where(u < 0.004, None, np.where(u < 0.004 + 0.068, "PRE-CREATE", "ACTIVE")).astype(object)
    n_left = max(1, round(n * 0.0003))
    club[rng.choice(np.flatnonzero(club == "ACTIVE"), n_left, replace=False)] = "LEFT CLUB"
    news = np.where(fn, np.where(rng.random(n) < 0.0017, "Monthly", "Regularly"),
                    np.where(rng.random(n) < 0.018, None, "NONE")).astype(object)
    n_none_word = max(1, round(n * 2 / 1_371_980))
    news[rng.choice(np.flatnonzero(news == "NONE"), n_none_word, replace=False)] = "None"
    age_public = np.where(rng.random(n) < 0.012, np.nan, age)

    n_codes = max(2, round(n * 0.2572))
    codes = hex_ids(rng, n_codes)
    n_default = round(n * 0.0877)
    rest = n - n_default
    spread = np.concatenate([np.arange(1, min(n_codes, rest + 1)),
                             rng.choice(np.arange(1, n_codes), max(0, rest - (n_codes - 1)),
                                        p=_normalised(rng.lognormal(0, 1.3, n_codes - 1)))])
    postal_idx = rng.permutation(np.concatenate([np.zeros(n_default, dtype=np.int64), spread[:rest]]))

    frame = pl.DataFrame({
        "customer_id": hex_ids(rng, n),
        "FN": np.where(fn, 1.0, np.nan),
        "Active": np.where(active, 1.0, np.nan),
        "club_member_status": club.tolist(),
        "fashion_news_frequency": news.tolist(),
        "age": age_public,
        "postal_code": codes.gather(postal_idx),
    }, schema=schema.CUSTOMER_COLUMNS, nan_to_null=True)

    # --- habits: heavy-tailed visit rates with a rhythm, join and churn -------------------------
    # two kinds of shoppers: occasional ones returning on a steady rhythm (~quarterly) and a
    # heavy-tailed minority of frequent, bursty ones
    heavy = rng.random(n) < scale.heavy_share
    rate = scale.visits_per_year / 365.0 * rng.lognormal(0, scale.rate_sigma, n)
    rate *= np.where(heavy, scale.heavy_rate * rng.lognormal(0, 0.6, n), 1.0)
    rate *= np.where(fn, 1.2, 1.0) * np.where(club == "PRE-CREATE", 0.6, 1.0) * np.where(club == "LEFT CLUB", 0.3, 1.0)
    rate = np.minimum(rate, 0.5)
    rate[rng.random(n) < 0.007] = 0.0  # registered, never bought
    # frequent shoppers browse widely: more of their baskets come from outside their favourite styles
    background = np.where(heavy, _beta_mean(rng, scale.heavy_background_share, 6.0, n), background)
    rhythm = np.where(heavy, rng.uniform(0.7, 1.5, n), np.clip(rng.lognormal(np.log(scale.rhythm), 0.3, n), 1.0, 12.0))
    already = rng.random(n) < scale.mean_lifetime_days / (scale.mean_lifetime_days + n_days)
    join = np.where(already, -1.0, rng.uniform(0, n_days, n))
    churn = np.maximum(join, 0) + rng.exponential(scale.mean_lifetime_days, n)
    basket = 1.0 + (scale.basket_mean - 1.0) * rng.lognormal(-0.125, 0.5, n)
    kind = rng.random(n)
    online_mean = np.where(age < 30, 0.04, 0.0)
    online = np.select(
        [kind < 0.58, kind < 0.80],
        [rng.beta(9, 1, n), rng.beta(1, 6, n)],
        rng.beta(2, 2, n),
    )
    online = np.clip(online + online_mean, 0, 1)
    repurchase = np.minimum(scale.repurchase * rng.lognormal(-0.32, 0.8, n), 0.6)
    multi_unit = np.minimum(scale.duplicate * rng.lognormal(-0.32, 0.8, n), 0.6)

    return Population(
        frame=frame, age=age, age_bucket=age_bucket, favourites=favourites, fav_weight=fav_weight,
        background=background, background_prior=prior, light_pref=light_pref, vivid_pref=vivid_pref,
        price_sens=price_sens, rate=rate, rhythm=rhythm, join=join, churn=churn, basket=basket, online=online,
        repurchase=repurchase, multi_unit=multi_unit,
    )


def _normalised(w: np.ndarray) -> np.ndarray:
    return w / w.sum()
