"""The op set, one `Function` subclass per op, grouped by family (tinygrad's ops_cpu layout)."""
