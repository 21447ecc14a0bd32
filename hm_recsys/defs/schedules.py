"""The weekly retraining schedule: every Wednesday, rebuild the tables and the newest target week."""

from __future__ import annotations

import dagster as dg

RETRAIN_CRON = "0 6 * * 3"  # Wednesdays 06:00, after the week that ended on Tuesday is loaded


def build_schedules(weeks: dg.WeeklyPartitionsDefinition) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="weekly_retraining",
        cron_schedule=RETRAIN_CRON,
        target=dg.AssetSelection.all() - dg.AssetSelection.groups("raw"),
        execution_timezone="UTC",
        description="Rebuild the typed tables and retrain every model for the production (newest) week.",
    )
    def weekly_retraining(context: dg.ScheduleEvaluationContext):
        key = weeks.get_last_partition_key()
        return dg.RunRequest(run_key=f"retrain-{key}", partition_key=key, tags={"target_week": key})

    return [weekly_retraining]
