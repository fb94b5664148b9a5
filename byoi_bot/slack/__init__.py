"""The Slack adapter: Bolt listeners, Block Kit cards, the `Chat` port over the Web API."""
