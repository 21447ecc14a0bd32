"""The weekly retraining schedule: every Wednesday, the production (newest) week end to end.

Automation already rebuilds what changed; the schedule is the calendar's guarantee that the
production week is retrained even if nothing was noticed. Its run key names the week, so a week is
requested once, and a new week (after the code location reloads on new data) gets its own run.
"""

from __future__ import annotations

import dagster as dg

from hm_recsys.defs.jobs import IN_PROGRESS

RETRAIN_CRON = "0 6 * * 3"  # Wednesdays 06:00, after the week that ended on Tuesday is loaded


def build_schedules(weeks: dg.WeeklyPartitionsDefinition) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="weekly_retraining",
        cron_schedule=RETRAIN_CRON,
        job_name="week_job",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Retrain the production (newest) week's towers and candidates if automation has not; automation then ranks them.",
    )
    def weekly_retraining(context: dg.ScheduleEvaluationContext):
        key = weeks.get_last_partition_key()
        done = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("retrieval_candidates"), asset_partitions=[key]), limit=1).records
        busy = context.instance.get_runs(dg.RunsFilter(tags={"dagster/partition": key}, statuses=IN_PROGRESS), limit=1)
        if done or busy:
            return dg.SkipReason(f"production week {key} is built or being built; automation keeps it in sync")
        return dg.RunRequest(run_key=f"retrain-{key}", partition_key=key, tags={"target_week": key})

    return [weekly_retraining]
