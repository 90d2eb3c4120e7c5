"""Lambda entry points: parse, validate, call one domain function, serialise."""
