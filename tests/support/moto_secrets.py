"""``AWS::SecretsManager::Secret`` for moto's CloudFormation, which has no model of it (moto 5.2
skips the resource with a warning, and drops every output that refers to it).

The model below creates the secret through moto's own Secrets Manager backend, with the password
``GenerateSecretString`` asks for, so a stack deployed under ``mock_aws`` has its secret and its
outputs as CloudFormation would. Importing this module registers the model.
"""

from __future__ import annotations

import json
from typing import Any

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.secretsmanager.models import secretsmanager_backends


class StackSecret(CloudFormationModel):
    def __init__(self, arn: str) -> None:
        self.arn = arn

    @property
    def physical_resource_id(self) -> str:
        return self.arn  # Ref of a secret is its ARN

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,
                                        region_name: str, **kwargs: Any) -> StackSecret:
        properties = cloudformation_json.get("Properties", {})
        backend = secretsmanager_backends[account_id][region_name]
        generate = properties.get("GenerateSecretString")
        value = properties.get("SecretString")
        if generate is not None:
            value = json.loads(backend.get_random_password(
                password_length=int(generate.get("PasswordLength", 32)),
                exclude_characters=generate.get("ExcludeCharacters", ""),
                exclude_numbers=bool(generate.get("ExcludeNumbers", False)),
                exclude_punctuation=bool(generate.get("ExcludePunctuation", False)),
                exclude_uppercase=bool(generate.get("ExcludeUppercase", False)),
                exclude_lowercase=bool(generate.get("ExcludeLowercase", False)),
                include_space=bool(generate.get("IncludeSpace", False)),
                require_each_included_type=bool(generate.get("RequireEachIncludedType", True)),
            ))["RandomPassword"]
        created = backend.create_secret(name=properties.get("Name") or resource_name, secret_string=value,
                                        secret_binary=None, description=properties.get("Description"),
                                        tags=properties.get("Tags"), kms_key_id=properties.get("KmsKeyId"),
                                        client_request_token=None, replica_regions=[], force_overwrite=False)
        return cls(json.loads(created)["ARN"])


parsing.get_model_map.cache_clear()  # the map is cached on first use; rebuild it with the model above
