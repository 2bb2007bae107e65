"""Contracts: versioned event and command models, the message envelope and the topic catalog.

Everything another team needs to read or write our topics lives here, and `bess schemas export`
turns it into JSON Schema and an AsyncAPI 3.0 document.
"""
