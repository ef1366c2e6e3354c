"""Promotion from one stage to the next: gates, an approval record, a blue/green strategy
and the per-stage deployment history."""
