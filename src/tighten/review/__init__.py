"""Review: the owner's digest, the reply grammar and decisions."""
