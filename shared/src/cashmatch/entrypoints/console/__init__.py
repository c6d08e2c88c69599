"""The web console (`cashmatch ui`; services/console on Cloud Run): the month timeline, a page
per model version, the events and dead letters, and buttons that redrive, republish, approve
or reject, over the same ports and service functions as the CLI."""
