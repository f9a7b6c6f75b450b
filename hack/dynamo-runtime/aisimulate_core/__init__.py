"""Stand-in for the unreachable `aisimulate_core` package: only the names `dynamo.planner`
imports at module load. Calling into it (AIS timing models) raises."""
