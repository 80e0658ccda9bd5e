from rest_framework import serializers

from .models import Customer


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = [
            "id",
            "organization",
            "connection",
            "external_id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "company",
            "is_paying_customer",
            "loyalty_tier",
            "loyalty_balance",
            "upstream_updated_at",
            "synced_at",
        ]
        read_only_fields = fields
