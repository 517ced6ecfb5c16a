"""The composition root: CLI, application factory, runner, logging. Nothing imports it."""
