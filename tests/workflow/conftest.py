from tests.stackfixture import fleet, stack

__all__ = ["fleet", "stack"]
