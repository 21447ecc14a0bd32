"""Day-by-day purchase simulation: visits, baskets, lines, prices and channels.

Each visit picks a style cluster (a personal favourite, or the age-typical prior), then fills a basket
line by line: repurchase of a past article, another colour of a past product, the outfit partner of
a past purchase or of the previous line, or a fresh article drawn by current demand (launch life
cycle x season x markdown) and re-weighted by the customer's colour and price taste. Only the day's
own lines extend a customer's history, so every mechanism respects time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from hm_recsys.synth.catalog import Catalog, day_of_year
from hm_recsys.synth.customers import Population
from hm_recsys.synth.sampling import draw_rows as _draw_rows
from hm_recsys.synth.scales import Scale
from hm_recsys.synth.vocab import PRICE_DIVISOR

HISTORY_SLOTS = 16          # remembered past purchases per customer (ring buffer)
HISTORY_TAU_DAYS = 21.0     # recency scale when re-buying from history
CANDIDATES = 6              # importance-resampling candidates per fresh line
SEEN_PENALTY = 1e-4         # fresh picks avoid articles the customer already owns or has in the basket
SEEN_PRODUCT_PENALTY = 1e-3  # ... and other colours of products they own (variants come on purpose)
TASTE_LIGHT, TASTE_VIVID, TASTE_PRICE = 1.1, 1.1, 1.0  # weight of colour and price taste on fresh picks
TAIL_POWER = 0.5            # flattened demand used when a customer owns everything popular in a style
CLUSTER_DEMAND_POWER = 1.0  # how much a style's current launches and season pull its fans in
SAME_CLUSTER = 0.75         # a basket's later fresh lines stay in its cluster
ONLINE_BASKET, STORE_BASKET = 1.15, 0.8
ONLINE_OFFER_SHARE, ONLINE_OFFER = 0.12, 0.85
MEMBER_DISCOUNT_SHARE, MEMBER_DISCOUNT = 0.02, 0.9
VOUCHER_SHARE = 3e-5
MAX_LINES = 40


@dataclass
class DayRows:
    """Rows of one day's transactions (already expanded by units), in file order."""

    day: int
    customer: np.ndarray  # customer row
    article: np.ndarray   # internal article index
    price: np.ndarray     # float64, shelf price / 590
    channel: np.ndarray   # int8, 1 store / 2 online


def demand_factor(scale: Scale) -> np.ndarray:
    """Store-wide demand by day: summer peak, Black Friday, Christmas, January sale, spring 2020 dip."""
    days = np.datetime64(scale.start) + np.arange(scale.n_days)
    doy = day_of_year(scale.start, scale.n_days).astype(float)
    s = 1.0 + 0.75 * np.exp(-0.5 * ((doy - 182) / 26) ** 2)
    s += 0.15 * np.exp(-0.5 * ((doy - 355) / 10) ** 2) + 0.12 * np.exp(-0.5 * ((doy - 8) / 6) ** 2)
    for bf in ("2018-11-23", "2019-11-29"):
        s += 0.6 * np.exp(-0.5 * ((days - np.datetime64(bf)).astype(float) / 2.0) ** 2)
    dip = (days >= np.datetime64("2020-03-16")) & (days < np.datetime64("2020-05-11"))
    return s * np.where(dip, 0.72, 1.0)


def plan_visits(scale: Scale, pop: Population, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(day, customer) of every visit, sorted by day then a random order within the day.

    A renewal process per customer (gamma gaps: periodic when the shape is above 1) between join and
    churn, thinned by store-wide demand; a customer who joins during the data buys on the join day.
    """
    season = demand_factor(scale)
    keep_p = season / season.max()
    lam = pop.rate * season.max() / season.mean()
    n_days = scale.n_days
    who = np.flatnonzero(lam > 0)
    shape = pop.rhythm[who]
    scale_g = 1.0 / (shape * lam[who])
    end = np.minimum(pop.churn[who], n_days)
    joins = pop.join[who] >= 0
    # customers already active at the start sit inside a gap: length-biased gap times a uniform
    t = np.where(joins, pop.join[who], rng.gamma(shape + 1.0, scale_g) * rng.random(len(who)))
    first = joins.copy()
    days_out, cust_out = [], []
    idx = np.arange(len(who))
    while idx.size:
        alive = t < end[idx]
        idx, t, first = idx[alive], t[alive], first[alive]
        d = np.floor(t).astype(np.int64)
        kept = first | (rng.random(idx.size) < keep_p[np.minimum(d, n_days - 1)])
        days_out.append(d[kept])
        cust_out.append(who[idx[kept]])
        t = t + rng.gamma(shape[idx], scale_g[idx])
        first = np.zeros(idx.size, dtype=bool)
    day = np.concatenate(days_out)
    cust = np.concatenate(cust_out)
    # everyone in customers.csv bought at least once (like the real file): a customer whose draws all
    # fell outside the window gets one visit on a random day of their active span
    seen = np.zeros(pop.n, dtype=bool)
    seen[cust] = True
    lost = who[~seen[who]]
    if lost.size:
        lo = np.maximum(pop.join[lost], 0)
        hi = np.maximum(np.minimum(pop.churn[lost], n_days), lo + 1)
        day = np.concatenate([day, np.minimum(lo + rng.random(lost.size) * (hi - lo), n_days - 1).astype(np.int64)])
        cust = np.concatenate([cust, lost])
    order = np.lexsort((rng.random(day.size), day))
    return day[order], cust[order]


class _History:
    """Last HISTORY_SLOTS purchases (article, day) per customer."""

    def __init__(self, n_customers: int):
        self.article = np.full((n_customers, HISTORY_SLOTS), -1, dtype=np.int32)
        self.day = np.zeros((n_customers, HISTORY_SLOTS), dtype=np.int16)
        self.count = np.zeros(n_customers, dtype=np.int64)

    def pick(self, cust: np.ndarray, today: int, rng: np.random.Generator) -> np.ndarray:
        """A recency-weighted past article per customer (-1 without history)."""
        arts = self.article[cust]
        w = np.where(arts >= 0, np.exp(-(today - self.day[cust]) / HISTORY_TAU_DAYS) + 0.01, 0.0)
        cum = np.cumsum(w, axis=1)
        total = cum[:, -1]
        u = rng.random(cust.size) * total
        slot = np.minimum((cum < u[:, None]).sum(axis=1), HISTORY_SLOTS - 1)
        return np.where(total > 0, arts[np.arange(cust.size), slot], -1)

    def add(self, cust: np.ndarray, art: np.ndarray, today: int) -> None:
        if cust.size == 0:
            return
        order = np.argsort(cust, kind="stable")
        cust, art = cust[order], art[order]
        starts = np.flatnonzero(np.r_[True, cust[1:] != cust[:-1]])
        sizes = np.diff(np.r_[starts, cust.size])
        rank = np.arange(cust.size) - np.repeat(starts, sizes)
        keep = rank >= np.repeat(sizes, sizes) - HISTORY_SLOTS
        slot = (self.count[cust[keep]] + rank[keep]) % HISTORY_SLOTS
        self.article[cust[keep], slot] = art[keep]
        self.day[cust[keep], slot] = today
        self.count[cust[starts]] += sizes


class _Owned:
    """Which (customer, item) pairs were ever bought: a Bloom filter (a false hit only makes an unowned
    article look owned now and then, which is harmless), O(1) and vectorised at full scale."""

    _MULT = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))

    def __init__(self, n_items: int, expected_pairs: int):
        self.n_items = n_items
        self.bits = max(16, int(np.ceil(np.log2(max(expected_pairs, 1) * 10))))
        self.table = np.zeros(1 << self.bits, dtype=bool)

    def _slots(self, cust: np.ndarray, item: np.ndarray) -> list[np.ndarray]:
        key = cust.astype(np.uint64) * np.uint64(self.n_items) + item.astype(np.uint64)
        shift = np.uint64(64 - self.bits)
        return [((key * m) >> shift).astype(np.int64) for m in self._MULT]

    def add(self, cust: np.ndarray, item: np.ndarray) -> None:
        for slot in self._slots(cust, item):
            self.table[slot] = True

    def contains(self, cust: np.ndarray, item: np.ndarray) -> np.ndarray:
        slots = self._slots(cust, item)
        hit = self.table[slots[0]]
        for slot in slots[1:]:
            hit &= self.table[slot]
        return hit


def simulate(scale: Scale, catalog: Catalog, pop: Population, rng: np.random.Generator) -> Iterator[DayRows]:
    """Yield each day's transaction rows in date order."""
    n_days = scale.n_days
    doy = day_of_year(scale.start, n_days).astype(float)
    starts = catalog.cluster_start
    n_clusters = len(starts) - 1

    # cluster demand relative to its own average: seasons and launches move demand between styles
    mass = np.empty((n_days, n_clusters))
    for d in range(n_days):
        cum = np.concatenate([[0.0], np.cumsum(catalog.demand(d, doy[d]))])
        mass[d] = cum[starts[1:]] - cum[starts[:-1]]
    ratio_all = np.clip((mass / np.maximum(mass.mean(axis=0), 1e-12)) ** CLUSTER_DEMAND_POWER, 0.05, 5.0)

    visit_day, visit_cust = plan_visits(scale, pop, rng)
    bounds = np.searchsorted(visit_day, np.arange(n_days + 1))
    history = _History(pop.n)
    expected = int(pop.rate.sum() * n_days * scale.basket_mean) + 1
    owned = _Owned(catalog.n, expected)
    owned_product = _Owned(len(catalog.prod_count), expected)

    for d in range(n_days):
        cust = visit_cust[bounds[d]:bounds[d + 1]]
        if cust.size == 0:
            yield DayRows(d, *(np.empty(0, dtype=t) for t in (np.int64, np.int64, np.float64, np.int8)))
            continue
        w = catalog.demand(d, doy[d])
        day = _Day(d, w, np.concatenate([[0.0], np.cumsum(w)]), np.concatenate([[0.0], np.cumsum(w ** TAIL_POWER)]),
                   ratio_all[d], pop.background_prior * ratio_all[d][None, :])
        online = rng.random(cust.size) < pop.online[cust]
        lam = (pop.basket[cust] - 1.0) * np.where(online, ONLINE_BASKET, STORE_BASKET)
        n_lines = np.minimum(1 + rng.poisson(lam), MAX_LINES)
        lv, la = _fill_baskets(scale, catalog, pop, day, cust, n_lines, history, owned, owned_product, rng)
        lc = cust[lv]
        history.add(lc, la, d)
        owned.add(lc, la)
        owned_product.add(lc, catalog.product[la])
        ch = np.where(online[lv], 2, 1).astype(np.int8)
        units = 1 + np.where(rng.random(la.size) < pop.multi_unit[lc], rng.geometric(0.6, la.size), 0)
        price = _prices(catalog, d, la, ch, rng)
        yield DayRows(d, np.repeat(lc, units), np.repeat(la, units), np.repeat(price, units), np.repeat(ch, units))


@dataclass
class _Day:
    """What one day's shopping draws from."""

    index: int
    demand: np.ndarray      # (N,) article demand; 0 = not on sale
    cum: np.ndarray         # (N+1,) cumulative demand (cluster slices are contiguous)
    cum_tail: np.ndarray    # (N+1,) cumulative flattened demand, for browsing the long tail
    ratio: np.ndarray       # (K,) cluster demand relative to its average
    prior: np.ndarray       # (buckets, K) age-typical cluster weights today


def _pick_cluster(pop: Population, cust: np.ndarray, day: _Day, rng: np.random.Generator) -> np.ndarray:
    """A favourite style (weighted by taste and today's demand), or an age-typical one for the
    customer's background share of baskets."""
    cluster = _draw_favourite(pop, cust, day.ratio, rng)
    bg = rng.random(cust.size) < pop.background[cust]
    if bg.any():
        cluster[bg] = _draw_rows(day.prior, pop.age_bucket[cust[bg]], rng)
    return cluster


def _fill_baskets(scale: Scale, catalog: Catalog, pop: Population, day: _Day, cust: np.ndarray,
                  n_lines: np.ndarray, history: _History, owned: _Owned, owned_product: _Owned,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Articles of every basket line, position by position; returns (visit of line, article) in file order."""
    cluster = _pick_cluster(pop, cust, day, rng)
    basket = np.full((cust.size, int(n_lines.max())), -1, dtype=np.int64)
    line_visit, line_art, line_pos = [], [], []
    for j in range(basket.shape[1]):
        v = np.flatnonzero(n_lines > j)
        c = cust[v]
        art = np.full(v.size, -1, dtype=np.int64)
        # what kind of line: outfit partner of the previous line, re-buy, other colour, partner of a past buy
        is_bp = rng.random(v.size) < (0.0 if j == 0 else scale.basket_partner)
        r = rng.random(v.size)
        p_rep = pop.repurchase[c]
        is_rep = ~is_bp & (r < p_rep)
        is_var = ~is_bp & ~is_rep & (r < p_rep + scale.variant)
        is_hp = ~is_bp & ~is_rep & ~is_var & (r < p_rep + scale.variant + scale.history_partner)
        if is_bp.any():
            art[is_bp] = catalog.partner[np.maximum(basket[v[is_bp], j - 1], 0)]
        need = is_rep | is_var | is_hp
        if need.any():
            past = history.pick(c[need], day.index, rng)
            got = past.copy()
            sel = is_var[need]
            got[sel] = _other_variant(catalog, past[sel], rng)
            sel = is_hp[need]
            got[sel] = np.where(past[sel] >= 0, catalog.partner[np.maximum(past[sel], 0)], -1)
            art[need] = got
        art = np.where((art >= 0) & (day.demand[np.maximum(art, 0)] > 0), art, -1)  # must be on sale
        # suggested partners and colours are things the customer does not own yet
        suggested = (is_bp | is_var | is_hp) & (art >= 0)
        if suggested.any():
            again = owned.contains(c[suggested], art[suggested])
            again |= (art[suggested][:, None] == basket[v[suggested], :j]).any(axis=1)
            art[np.flatnonzero(suggested)[again]] = -1
        fresh = art < 0
        if fresh.any():
            art[fresh] = _fresh_lines(catalog, pop, day, v[fresh], c[fresh], cluster[v[fresh]], j > 0,
                                      basket[v[fresh], :j], owned, owned_product, rng)
        basket[v, j] = art
        line_visit.append(v)
        line_art.append(art)
        line_pos.append(np.full(v.size, j))
    lv, la, pos = np.concatenate(line_visit), np.concatenate(line_art), np.concatenate(line_pos)
    order = np.lexsort((pos, lv))
    return lv[order], la[order]


def _fresh_lines(catalog: Catalog, pop: Population, day: _Day, visit: np.ndarray, cust: np.ndarray,
                 cluster: np.ndarray, later: bool, basket: np.ndarray, owned: _Owned, owned_product: _Owned,
                 rng: np.random.Generator) -> np.ndarray:
    """New-to-the-customer articles: later lines of a basket sometimes wander to another style; a
    customer who owns everything popular in a style browses the long tail of a favourite, then of an
    age-typical style; whatever is still owned after that is bought again."""
    cluster = cluster.copy()
    if later:
        move = rng.random(cluster.size) >= SAME_CLUSTER
        if move.any():
            cluster[move] = _pick_cluster(pop, cust[move], day, rng)
    picked, stuck = _fresh(catalog, day.cum, cluster, cust, basket, owned, owned_product, pop, rng)
    for attempt in range(2):
        if not stuck.any():
            break
        who = np.flatnonzero(stuck)
        cs = cust[who]
        other = (_draw_favourite(pop, cs, day.ratio, rng) if attempt == 0 else
                 _draw_rows(day.prior, pop.age_bucket[cs], rng))
        again, still = _fresh(catalog, day.cum_tail, other, cs, basket[who], owned, owned_product, pop, rng)
        picked[who[~still]] = again[~still]
        stuck = np.zeros_like(stuck)
        stuck[who[still]] = True
    return picked


def _prices(catalog: Catalog, d: int, art: np.ndarray, channel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shelf price after markdowns, weekly online offers and occasional member discounts, in cents,
    divided by 590 like the competition file (a rare voucher line costs a few cents)."""
    price = catalog.shelf[art] * catalog.price_factor(d)[art]
    week = (d + 1) // 7
    offer = ((art * 2654435761 + week * 40503) % 1000) < ONLINE_OFFER_SHARE * 1000
    price = price * np.where((channel == 2) & offer, ONLINE_OFFER, 1.0)
    price = price * np.where(rng.random(art.size) < MEMBER_DISCOUNT_SHARE, MEMBER_DISCOUNT, 1.0)
    cents = np.maximum(np.round(price * 100.0), 1.0)
    cents = np.where(rng.random(art.size) < VOUCHER_SHARE, rng.integers(1, 100, art.size), cents)
    return cents / 100.0 / PRICE_DIVISOR


def _draw_favourite(pop: Population, cust: np.ndarray, ratio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    fav = pop.favourites[cust]
    fcum = np.cumsum(pop.fav_weight[cust] * ratio[fav], axis=1)
    pick = (fcum < (rng.random(cust.size) * fcum[:, -1])[:, None]).sum(axis=1)
    return fav[np.arange(cust.size), np.minimum(pick, fav.shape[1] - 1)]


def _other_variant(catalog: Catalog, art: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another colour variant of the same product (-1 when the product has one colour)."""
    a = np.maximum(art, 0)
    p = catalog.product[a]
    cnt = catalog.prod_count[p]
    start = catalog.prod_start[p]
    step = 1 + (rng.random(a.size) * np.maximum(cnt - 1, 1)).astype(np.int64)
    other = start + (a - start + step) % cnt
    return np.where((art >= 0) & (cnt > 1), other, -1)


def _fresh(catalog: Catalog, cum: np.ndarray, cluster: np.ndarray, cust: np.ndarray, basket: np.ndarray,
           owned: _Owned, owned_product: _Owned, pop: Population,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw CANDIDATES articles by current demand inside each cluster and keep one by the customer's
    taste (colour, price), steering away from articles (and products) they own or already picked in
    this ``basket``. Returns (articles, stuck): stuck when every candidate was owned."""
    starts = catalog.cluster_start
    lo, hi = cum[starts[cluster]], cum[starts[cluster + 1]]
    empty = hi - lo <= 0
    lo = np.where(empty, 0.0, lo)
    hi = np.where(empty, cum[-1], hi)
    u = lo[:, None] + rng.random((cluster.size, CANDIDATES)) * (hi - lo)[:, None]
    cand = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, catalog.n - 1)
    score = (TASTE_LIGHT * pop.light_pref[cust][:, None] * catalog.lightness[cand]
             + TASTE_VIVID * pop.vivid_pref[cust][:, None] * catalog.vividness[cand]
             - TASTE_PRICE * pop.price_sens[cust][:, None] * catalog.price_rel[cand])
    wgt = np.exp(score - score.max(axis=1, keepdims=True))
    cust_c = np.repeat(cust, CANDIDATES)
    has = owned.contains(cust_c, cand.ravel()).reshape(cand.shape)
    has |= (cand[:, :, None] == basket[:, None, :]).any(axis=2)
    has_product = owned_product.contains(cust_c, catalog.product[cand].ravel()).reshape(cand.shape)
    wgt *= np.where(has, SEEN_PENALTY, np.where(has_product, SEEN_PRODUCT_PENALTY, 1.0))
    wcum = np.cumsum(wgt, axis=1)
    k = np.minimum((wcum < (rng.random(cluster.size) * wcum[:, -1])[:, None]).sum(axis=1), CANDIDATES - 1)
    rows = np.arange(cluster.size)
    return cand[rows, k], (has | has_product).all(axis=1)
