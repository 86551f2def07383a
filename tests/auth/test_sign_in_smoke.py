from portal.models import Role
from tests.support import sign_in


def test_enrolled_user_signs_in_with_password_and_code_and_sees_home(client, factory):
    school = factory.school()
    account = factory.account(school, Role.SCHOOL_STAFF)
    response = sign_in(client, account)
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "Welcome, Test User" in home.get_data(as_text=True)
