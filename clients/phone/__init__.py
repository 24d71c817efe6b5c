"""The phone: daily keys, observations, sync, local matching and risk scoring. It never sends observations."""
