"""What test modules share: fakes of the product's adapters, builders, the local stack as a
fixture, pinned AWS data. Test modules import from here, never from one another."""
