"""A small safe expression language for constraints and derived values.

Arithmetic (+ - * / // % **), comparisons (chained too), and / or / not, conditional
expressions, numbers, strings, booleans and known names; a name holding other characters than a Python
name's (a metric such as val/loss_compressed) goes in backquotes, as in pandas' query. Nothing else: no calls, attributes,
subscripts or comprehensions, so a shared YAML file can never run code; and bounded powers and
products, so it can never hang a sweep either.
"""
from __future__ import annotations

import ast
import operator
import re
from typing import Any, Mapping

MAX_EXPONENT = 256  # a shared space must not hang a sweep on 9 ** 9 ** 9 or 'x' * 10 ** 9
MAX_BITS = 4096
MAX_REPEAT = 10_000


def _pow(base, exponent):
    if isinstance(exponent, (int, float)) and abs(exponent) > MAX_EXPONENT:
        raise ExpressionError(f"exponent {exponent} is larger than {MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and base.bit_length() * exponent > MAX_BITS:
        raise ExpressionError(f"{base} ** {exponent} would have more than {MAX_BITS} bits")
    return operator.pow(base, exponent)


def _mul(a, b):
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, tuple)) and isinstance(n, int) and n > MAX_REPEAT:
            raise ExpressionError(f"repeating a sequence {n} times (more than {MAX_REPEAT})")
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_BITS:
        raise ExpressionError(f"a product with more than {MAX_BITS} bits")
    return operator.mul(a, b)


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}


class ExpressionError(ValueError):
    pass


class Expression:
    """A parsed expression: `names` lists what it reads, `__call__(env)` evaluates it."""

    def __init__(self, source: str):
        self.source = str(source)
        self.quoted: dict[str, str] = {}  # placeholder identifier -> the backquoted name it stands for

        def hold(match: re.Match) -> str:
            self.quoted[f"_lclab_quoted_{len(self.quoted)}"] = match.group(1)
            return f"_lclab_quoted_{len(self.quoted) - 1}"

        try:
            self.tree = ast.parse(re.sub(r"`([^`]+)`", hold, self.source), mode="eval").body
        except SyntaxError as err:
            raise ExpressionError(f"cannot parse '{self.source}': {err.msg}") from None
        self.names = set()
        self._check(self.tree)

    def _check(self, node: ast.AST) -> None:
        allowed = (ast.BinOp, ast.BoolOp, ast.Compare, ast.UnaryOp, ast.IfExp, ast.Constant, ast.Name, ast.Tuple,
                   ast.List, ast.Load, ast.And, ast.Or, *_BINARY, *_COMPARE, *_UNARY)
        if not isinstance(node, allowed):
            raise ExpressionError(f"'{self.source}' uses {type(node).__name__}, which lclab expressions do not allow "
                                  "(only arithmetic, comparisons, and/or/not and names)")
        if isinstance(node, ast.Name):
            self.names.add(self.quoted.get(node.id, node.id))
        for child in ast.iter_child_nodes(node):
            self._check(child)

    def __call__(self, env: Mapping[str, Any]) -> Any:
        return self._eval(self.tree, env)

    def _eval(self, node, env):
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                name = self.quoted.get(name, name)
                if name not in env:
                    raise ExpressionError(f"unknown name '{name}' in '{self.source}'")
                return env[name]
            case ast.BinOp(left=left, op=op, right=right):
                return _BINARY[type(op)](self._eval(left, env), self._eval(right, env))
            case ast.UnaryOp(op=op, operand=operand):
                return _UNARY[type(op)](self._eval(operand, env))
            case ast.BoolOp(op=ast.And(), values=values):
                return all(self._eval(v, env) for v in values)
            case ast.BoolOp(op=ast.Or(), values=values):
                return any(self._eval(v, env) for v in values)
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                current = self._eval(left, env)
                for op, right in zip(ops, comparators):
                    value = self._eval(right, env)
                    if not _COMPARE[type(op)](current, value):
                        return False
                    current = value
                return True
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self._eval(body, env) if self._eval(test, env) else self._eval(orelse, env)
            case ast.Tuple(elts=elts) | ast.List(elts=elts):
                return tuple(self._eval(e, env) for e in elts)
        raise ExpressionError(f"cannot evaluate '{self.source}'")  # unreachable after _check
