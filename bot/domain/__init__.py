"""Pure rules of a policy profile and inputs: no storage, messages, Telegram or I/O."""
