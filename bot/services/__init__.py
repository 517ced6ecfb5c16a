"""The use cases: each takes a unit of work; handlers and scheduled jobs call them."""
