"""CMRRisk Predict's parameters, logic, widget and self-test (the module file is a thin shell)."""
