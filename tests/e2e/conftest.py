from tests.support.stack import fleet, stack

__all__ = ["fleet", "stack"]
