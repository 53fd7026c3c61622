"""CMRRisk Segment's parameters, logic, widget and self-test (the module file is a thin shell)."""
