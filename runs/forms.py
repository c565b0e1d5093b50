"""The run form, built from a version's `spec.inputs`, and the filters of the runs list.

The run form only chooses widgets and collects text: every value goes to
`WorkflowSpec.check_inputs(from_text=True)`, the one place inputs are checked, and its
problems come back onto the fields they name.
"""
import json

from django import forms

from .models import Run

INPUT_PREFIX = "input_"


def _initial(field):
    """The spec default as the text its widget shows."""
    value = field.default
    if value is None:
        return None
    if field.type == "boolean":
        return bool(value)
    if field.type == "array":
        if all(isinstance(item, str) and "\n" not in item for item in value):
            return "\n".join(value)
        return json.dumps(value, ensure_ascii=False)
    if field.type == "object":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return str(value)


def _form_field(name, field):
    """A Django field for one InputField; `required` stays False, check_inputs decides."""
    options = {
        "label": field.title or name,
        "help_text": field.description,
        "required": False,
        "initial": _initial(field),
    }
    # Marked in the page and for assistive technology; the server still checks it.
    attrs = {"aria-required": "true"} if field.required else {}
    if field.enum is not None:
        choices = [(str(value), str(value)) for value in field.enum]
        if not field.required:
            choices.insert(0, ("", "—"))
        return forms.ChoiceField(choices=choices, widget=forms.Select(attrs=attrs), **options)
    if field.type == "boolean":
        return forms.BooleanField(widget=forms.CheckboxInput(attrs=attrs), **options)
    if field.type in ("integer", "number"):
        attrs["step"] = "1" if field.type == "integer" else "any"
        for bound in ("min", "max"):
            limit = getattr(field, bound)
            if limit is not None:
                attrs[bound] = int(limit) if field.type == "integer" and float(limit).is_integer() else limit
        return forms.CharField(widget=forms.NumberInput(attrs=attrs), **options)
    if field.type == "string":
        if field.max_length is not None:
            attrs["maxlength"] = field.max_length
        return forms.CharField(widget=forms.TextInput(attrs=attrs), strip=False, **options)
    if field.type == "array":
        options["help_text"] = " ".join(filter(None, [field.description, "One per line."]))
        return forms.CharField(widget=forms.Textarea(attrs={**attrs, "rows": 5}), strip=False, **options)
    if field.type == "object":
        options["help_text"] = " ".join(filter(None, [field.description, "A JSON object."]))
        attrs["class"] = "mono"
        return forms.CharField(widget=forms.Textarea(attrs={**attrs, "rows": 6, "spellcheck": "false"}),
                               strip=False, **options)
    return forms.CharField(widget=forms.Textarea(attrs={**attrs, "rows": 5}), strip=False, **options)


class RunForm(forms.Form):
    """A mode choice and one field per input of `spec` (named `input_<name>`).

    `modes` limits the modes offered (a draft only runs in test or validate mode).
    """

    mode = forms.ChoiceField(choices=Run.Mode.choices, initial=Run.Mode.FULL,
                             help_text="Test caps tokens and time; validate checks the workflow and runs nothing.")

    def __init__(self, spec, *args, modes=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        if modes is not None:
            self.fields["mode"].choices = [(value, label) for value, label in Run.Mode.choices if value in modes]
            self.fields["mode"].initial = modes[0]
        for name, field in spec.inputs.items():
            form_field = _form_field(name, field)
            form_field.input = field
            form_field.marked_required = field.required
            self.fields[INPUT_PREFIX + name] = form_field

    def input_fields(self):
        return [self[name] for name in self.fields if name.startswith(INPUT_PREFIX)]

    def clean(self):
        """Check the inputs with the spec; every problem lands on its field.

        The form shows each default prefilled, so a required field left blank was cleared
        on purpose: it is an error here, where the API and the command line would fall
        back to the default.
        """
        data = super().clean()
        texts = {}
        for name, field in self.spec.inputs.items():
            key = INPUT_PREFIX + name
            if key in self.errors:
                continue
            value = data.get(key)
            if field.type == "boolean":
                texts[name] = "true" if value else "false"
            elif value is None or value.strip() == "":
                if field.required:
                    self.add_error(key, f"{self.fields[key].label} is required.")
                    continue
                texts[name] = ""
            else:
                texts[name] = value
        clean, problems = self.spec.check_inputs(texts, from_text=True)
        for problem in problems:
            key = INPUT_PREFIX + problem["path"].removeprefix("$.inputs.")
            if key in self.fields and key in self.errors:
                continue  # already told about this field
            self.add_error(key if key in self.fields else None, problem["message"])
        data["inputs"] = clean
        return data


class RunFilterForm(forms.Form):
    """The filters of the runs list (GET); every field is optional."""

    workflow = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Run.Status.choices])
    mode = forms.ChoiceField(required=False, choices=[("", "Any mode"), *Run.Mode.choices])
    trigger = forms.ChoiceField(required=False, choices=[("", "Any trigger"), *Run.Trigger.choices])
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, workflows=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workflow"].choices = [("", "Any workflow"), *((w.slug, w.name) for w in workflows)]

    def filter(self, runs):
        """`runs` narrowed by the valid filters (invalid ones are ignored and shown as errors)."""
        if not self.is_valid():
            return runs
        data = self.cleaned_data
        if data["workflow"]:
            runs = runs.filter(workflow__slug=data["workflow"])
        for name in ("status", "mode", "trigger"):
            if data[name]:
                runs = runs.filter(**{name: data[name]})
        if data["since"]:
            runs = runs.filter(created_at__date__gte=data["since"])
        if data["until"]:
            runs = runs.filter(created_at__date__lte=data["until"])
        return runs
