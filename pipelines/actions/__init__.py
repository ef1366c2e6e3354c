"""What each command does, as plain functions, one module per area: a task parses its
arguments, calls one of these and hands what it returns to ``pipelines.ui``. Tests call
them without invoke. Nothing here prints."""
