"""Hand-written SQL for the few hot paths where the ORM's query building costs more than
the query: authenticating an API key and starting a run, on every API call.

`Columns` selects a model's concrete columns under a table alias and turns the values back
into an instance with the same converters the ORM applies, so the rest of the code sees
ordinary model instances (fields left out are deferred, as with `.only()`).
"""
from django.db import DEFAULT_DB_ALIAS, connections


class Columns:
    def __init__(self, model, alias, exclude=()):
        self.model = model
        self.alias = alias
        self.fields = [f for f in model._meta.concrete_fields if f.attname not in exclude and f.name not in exclude]
        self.attnames = [f.attname for f in self.fields]
        self._converters = {}

    def __len__(self):
        return len(self.fields)

    def sql(self, connection):
        qn = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{qn(f.column)}" for f in self.fields)

    def load(self, values, connection):
        """A model instance from `values` (this object's columns, in order)."""
        converters = self._converters.get(connection.vendor)
        if converters is None:
            converters = self._converters[connection.vendor] = []
            for f in self.fields:
                col = f.get_col(self.model._meta.db_table)
                converters.append((col, connection.ops.get_db_converters(col) + col.get_db_converters(connection)))
        converted = []
        for value, (col, functions) in zip(values, converters):
            for function in functions:
                value = function(value, col, connection)
            converted.append(value)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, converted)


def fetch_one(sql, params):
    """The first row of `sql` (with %s placeholders), or None, on the default connection."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
