"""byoi-bot: a Slack chat-ops bot for OVHcloud Bring Your Own Image deployments."""

__version__ = "0.1.0"
