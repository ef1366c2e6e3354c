"""Automation: the events AWS emits, the local agent that acts on what the rules deliver.

The EventBridge rules live in infra/modules/automation and are applied to AWS and to the
emulator alike; this package builds AWS's events where the emulator does not emit them
(``events``), publishes them (``publish``, ``hooks``), evaluates schedules (``schedule``),
maps a fired rule to the invoke task a person would run (``actions``), records what
was done (``log``) and runs the local agent (``agent``).
"""
