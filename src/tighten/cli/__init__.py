"""The command line: one module per noun; each command parses, calls one domain
function, and renders the result."""
