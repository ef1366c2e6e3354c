"""Automation: the local agent that acts on what the EventBridge rules deliver.

The rules live in infra/modules/automation and are applied to AWS and to the emulator
alike; the events AWS services emit are built and sent by ``pipelines.events`` where the
emulator does not emit them. This package evaluates schedules (``schedule_expressions``),
maps a fired rule to the invoke task a person would run and checks its event
(``rule_actions``), records what was done (``log``), runs the local agent (``agent``)
and installs the git hook that sends commit events (``git_hook``).
"""
