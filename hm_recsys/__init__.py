"""hm_recsys: two-stage fashion recommender on Dagster."""
