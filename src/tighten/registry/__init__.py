"""The artifact registry: versioned prompts, playbooks, souls, configs, tools and code
references, with movable labels, guardrails, deploy and one-step rollback."""
